import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MergedView } from "../../src/layers/merged-view.js";
import { archiveView } from "../../src/layers/tar-writer.js";
import { applyChain, readManifest, script, snapshot, tempDir } from "./helpers.js";

// Archive the merged view of the features image with our writer, extract it with GNU tar, and
// compare with GNU tar's own extraction of the original layers.
describe("tar writer round trip through GNU tar", () => {
  let work: string;
  let view: MergedView;

  beforeAll(async () => {
    work = tempDir("tarwriter");
    script("features-layers.sh", [path.join(work, "fx")]);
    const man = readManifest(path.join(work, "fx/man-features.json"));
    const blobs = path.join(work, "fx/oci/blobs/sha256");
    const { dirs } = await applyChain(blobs, man, path.join(work, "layers"));
    view = new MergedView(dirs);
    script("gnutar-unpack.sh", [blobs, path.join(work, "fx/man-features.json"), path.join(work, "gnu")]);
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const extract = async (archivePath: string, into: string): Promise<string[]> => {
    const file = path.join(work, `${path.basename(into)}.tar`);
    await pipeline(archiveView(view, archivePath), fs.createWriteStream(file));
    fs.mkdirSync(into, { recursive: true });
    execFileSync("tar", [
      "-xpf",
      file,
      "-C",
      into,
      "--numeric-owner",
      "--xattrs",
      "--xattrs-include=*",
      "--same-owner",
    ]);
    return execFileSync("tar", ["-tf", file], { encoding: "utf8" }).trim().split("\n");
  };

  it("archives the whole image identically to the original", async () => {
    const names = await extract("/", path.join(work, "whole"));
    expect(names.some((n) => n.startsWith("/"))).toBe(false);
    expect(snapshot(path.join(work, "whole"))).toEqual(snapshot(path.join(work, "gnu")));
  });

  it("archives a subtree with names relative to the root", async () => {
    const names = await extract("/opt/feat", path.join(work, "sub"));
    expect(names[0]).toBe("opt/feat/");
    expect(names.every((n) => n.startsWith("opt/feat/"))).toBe(true);
    const want = snapshot(path.join(work, "gnu"))
      .split("\n")
      .filter((l) => l.startsWith("opt/feat/"));
    const got = snapshot(path.join(work, "sub"))
      .split("\n")
      .filter((l) => l.startsWith("opt/feat/"));
    expect(got).toEqual(want);
  });
});
