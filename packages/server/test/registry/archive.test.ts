import { execFileSync } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openImageArchive } from "../../src/registry/archive-reader.js";
import { DOCKER_MANIFEST, OCI_MANIFEST } from "../../src/registry/media-types.js";
import { TarIndex } from "../../src/registry/tar-index.js";
import { type Fixtures, fixtures } from "../harness/fixtures.js";
import { appErrorOf, drain, drainLayers } from "../harness/pull.js";

let fx: Fixtures;
let tmp: string;
beforeAll(async () => {
  fx = await fixtures();
  tmp = mkdtempSync(join(tmpdir(), "contree-archive-test-"));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function layoutDigest(tag: string): string {
  const index = JSON.parse(readFileSync(join(fx.layout, "index.json"), "utf8")) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const hit = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!hit) throw new Error(`no ${tag}`);
  return hit.digest;
}

describe("archive reader", () => {
  it("reads an OCI archive holding an index", async () => {
    const img = await openImageArchive(fx.archives.busyboxOci);
    expect(img.format).toBe("oci");
    expect(img.topDigest).toBe(layoutDigest("busybox"));
    expect(img.manifestDigest).toBe(layoutDigest("busybox-amd64"));
    expect(img.manifestMediaType).toBe(OCI_MANIFEST);
    const layers = await drainLayers(img, (d) => img.openBlob(d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it("reads the 3-layer features OCI archive", async () => {
    const img = await openImageArchive(fx.archives.featuresOci, { tag: "latest" });
    expect(img.manifestDigest).toBe(layoutDigest("features"));
    const layers = await drainLayers(img, (d) => img.openBlob(d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it("reads a legacy docker save archive, resolving layer.tar symlinks inside it", async () => {
    const tar = await TarIndex.open(fx.archives.busyboxDocker);
    const link = tar.names.find((n) => n.endsWith("/layer.tar"));
    expect(link).toBeDefined();
    expect(tar.resolve(link ?? "")?.name).toMatch(/^[0-9a-f]{64}\.tar$/);

    const img = await openImageArchive(fx.archives.busyboxDocker);
    expect(img.format).toBe("docker");
    expect(img.reference).toBe("docker.io/fixtures/busybox:latest");
    expect(img.manifestMediaType).toBe(DOCKER_MANIFEST);
    expect(img.manifest.layers[0]?.mediaType).toBe("application/vnd.docker.image.rootfs.diff.tar");
    const layers = await drainLayers(img, (d) => img.openBlob(d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it("reads the features docker archive (3 uncompressed layers)", async () => {
    const img = await openImageArchive(fx.archives.featuresDocker, { tag: "fixtures/features:latest" });
    expect(img.manifest.layers).toHaveLength(3);
    const layers = await drainLayers(img, (d) => img.openBlob(d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it("reads a Docker 25 archive through its OCI index", async () => {
    const img = await openImageArchive(fx.archives.busyboxDocker25);
    expect(img.format).toBe("oci");
    expect(img.manifestDigest).toBe(layoutDigest("busybox-amd64"));
    expect(img.reference).toBe("docker.io/fixtures/busybox:latest");
    const layers = await drainLayers(img, (d) => img.openBlob(d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it("detects a corrupted layer while streaming", async () => {
    const copy = join(tmp, "corrupt.oci.tar");
    copyFileSync(fx.archives.busyboxOci, copy);
    const tar = await TarIndex.open(copy);
    const img = await openImageArchive(copy);
    const layer = img.manifest.layers[0];
    if (!layer) throw new Error("no layer");
    const member = tar.resolve(`blobs/sha256/${layer.digest.slice(7)}`);
    if (!member) throw new Error("no member");
    const fd = openSync(copy, "r+");
    writeSync(fd, Buffer.from([0x00, 0xff, 0x00]), 0, 3, member.offset + 5000);
    closeSync(fd);
    const e = await appErrorOf(drain(img.openBlob(layer)));
    expect(e.kind).toBe("data_loss");
    expect(e.message).toMatch(/digest mismatch/);
  });

  it("rejects what is not an image archive", async () => {
    const junk = join(tmp, "junk.tar");
    writeFileSync(junk, Buffer.alloc(4096, 0x41));
    expect((await appErrorOf(openImageArchive(junk))).message).toMatch(
      /not a valid image archive: not a tar file/,
    );

    const dir = join(tmp, "plain");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "hello.txt"), "hi");
    const plain = join(tmp, "plain.tar");
    execFileSync("tar", ["-cf", plain, "-C", dir, "hello.txt"]);
    const e = await appErrorOf(openImageArchive(plain));
    expect(e.kind).toBe("invalid_argument");
    expect(e.message).toMatch(/no index.json/);
    expect(e.message).not.toContain(tmp);
  });

  it("rejects links that point outside the archive", async () => {
    const dir = join(tmp, "escape");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "manifest.json"),
      JSON.stringify([{ Config: "cfg.json", RepoTags: ["x:1"], Layers: ["layer.tar"] }]),
    );
    execFileSync("ln", ["-sf", "../../../etc/passwd", join(dir, "cfg.json")]);
    const out = join(tmp, "escape.tar");
    execFileSync("tar", ["-cf", out, "-C", dir, "manifest.json", "cfg.json"]);
    const e = await appErrorOf(openImageArchive(out));
    expect(e.kind).toBe("invalid_argument");
    expect(e.message).toMatch(/config file missing/);
  });

  it("asks for a tag that is not there", async () => {
    const e = await appErrorOf(openImageArchive(fx.archives.busyboxDocker, { tag: "nope:1" }));
    expect(e.kind).toBe("not_found");
  });
});
