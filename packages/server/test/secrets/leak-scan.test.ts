/** What the commit-time scan finds, on real files: encodings, chunk boundaries, names, links. */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { leakNeedles } from "../../src/secrets/leak-needles.js";
import { searchTree } from "../../src/snapshots/overlay/byte-search.js";

describe("leak scan", () => {
  let upper: string;
  const value = Buffer.from(`tok-${randomBytes(12).toString("hex")}`);
  const needles = leakNeedles("T", value);

  beforeEach(async () => {
    upper = await mkdtemp(join(tmpdir(), "contree-leak-"));
    await mkdir(join(upper, "etc"));
    await writeFile(join(upper, "etc", "clean"), "nothing here\n");
  });
  afterEach(async () => {
    await rm(upper, { recursive: true, force: true });
  });

  const hit = async () => {
    const h = await searchTree(upper, needles);
    return h && { path: h.path, encoding: h.needle.encoding };
  };

  it("nothing found in clean writes", async () => {
    expect(await hit()).toBeNull();
  });

  it("base64 (standard and URL-safe) at each alignment, and hex, inside longer text", async () => {
    for (let pad = 0; pad < 3; pad++) {
      const b64 = Buffer.concat([Buffer.from("x".repeat(pad)), value, Buffer.from("tail")]).toString(
        "base64",
      );
      await writeFile(join(upper, "etc", "f"), `A=${b64}\n`);
      expect(await hit(), `pad ${pad}`).toEqual({ path: "/etc/f", encoding: "base64" });
      await writeFile(join(upper, "etc", "f"), b64.replace(/\+/g, "-").replace(/\//g, "_"));
      expect((await hit())?.path).toBe("/etc/f");
    }
    await writeFile(join(upper, "etc", "f"), `k: ${value.toString("hex").toUpperCase()}`);
    expect(await hit()).toEqual({ path: "/etc/f", encoding: "hex" });
  });

  it("a value across the 1 MiB read boundary of a large file", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 0x61);
    value.copy(big, 1024 * 1024 - 5);
    await writeFile(join(upper, "big"), big);
    expect(await hit()).toEqual({ path: "/big", encoding: "raw" });
  });

  it("in a symlink target, and in a name (reported as its directory)", async () => {
    await symlink(`/x/${value.toString()}`, join(upper, "etc", "link"));
    expect(await hit()).toEqual({ path: "/etc/link", encoding: "raw" });
    await rm(join(upper, "etc", "link"));
    await mkdir(join(upper, "d"));
    await writeFile(join(upper, "d", value.toString()), "");
    expect(await hit()).toEqual({ path: "/d", encoding: "raw" });
  });
});
