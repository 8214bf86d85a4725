/** Writes into a run's rootfs stay inside it, whatever symlinks and `..` the image holds. */
import { existsSync, lstatSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureDir, writeFileInto } from "../../src/snapshots/overlay/rootfs-writer.js";

let base = "";
let root = "";
let outside = "";
beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), "rootfs-writer-"));
  root = path.join(base, "root");
  outside = path.join(base, "outside");
  await mkdir(path.join(root, "root"), { recursive: true });
  await mkdir(outside);
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("ensureDir (the run's cwd)", () => {
  it("accepts an existing directory and creates missing ones", async () => {
    await ensureDir(root, "/root");
    await ensureDir(root, "/work/a/b");
    expect(lstatSync(path.join(root, "work/a/b")).isDirectory()).toBe(true);
  });

  it("follows symlinks inside the root only: an absolute link to the host lands inside", async () => {
    await symlink(outside, path.join(root, "escape"));
    await symlink("../../..", path.join(root, "up"));
    await ensureDir(root, "/escape/made");
    await ensureDir(root, "/up/up2/made");
    await ensureDir(root, "/../../made3");
    expect(existsSync(path.join(outside, "made"))).toBe(false);
    expect(lstatSync(path.join(root, outside, "made")).isDirectory()).toBe(true);
    expect(lstatSync(path.join(root, "up2/made")).isDirectory()).toBe(true);
    expect(lstatSync(path.join(root, "made3")).isDirectory()).toBe(true);
    expect(existsSync(path.join(base, "made3"))).toBe(false);
  });

  it("refuses a cwd that is a file", async () => {
    await writeFile(path.join(root, "file"), "x");
    await expect(ensureDir(root, "/file")).rejects.toMatchObject({ kind: "unprocessable" });
  });
});

describe("writeFileInto (uploaded files)", () => {
  it("writes through an escaping parent symlink into the root, never the host", async () => {
    const src = path.join(base, "blob");
    await writeFile(src, "payload");
    await symlink(outside, path.join(root, "etc"));
    await writeFileInto(root, "/etc/x.conf", src, { uid: 0, gid: 0, mode: 0o640 });
    expect(existsSync(path.join(outside, "x.conf"))).toBe(false);
    expect(readFileSync(path.join(root, outside, "x.conf"), "utf8")).toBe("payload");
    expect(lstatSync(path.join(root, outside, "x.conf")).mode & 0o777).toBe(0o640);
  });
});
