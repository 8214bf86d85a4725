import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpRegistryClient } from "../../src/registry/http-registry-client.js";
import { DOCKER_MANIFEST, OCI_MANIFEST } from "../../src/registry/media-types.js";
import { parseImageReference } from "../../src/registry/reference.js";
import { FIXTURE_IMAGES, type Fixtures, fixtures } from "../harness/fixtures.js";
import { appErrorOf, drainLayers } from "../harness/pull.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

let fx: Fixtures;
let reg: RegistryHandle;
/** The test registry listens on loopback: allowed explicitly. */
const client = new HttpRegistryClient({
  retry: { baseDelayMs: 10, maxDelayMs: 50 },
  privateRegistries: ["127.0.0.0/8"],
});

/** Digest of a tag in the fixture OCI layout (what the pushed registry must serve). */
function layoutDigest(tag: string): string {
  const index = JSON.parse(readFileSync(join(fx.layout, "index.json"), "utf8")) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const hit = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!hit) throw new Error(`no ${tag} in layout`);
  return hit.digest;
}

beforeAll(async () => {
  fx = await fixtures();
  reg = await startRegistry({ seedFrom: fx.registryData });
});
afterAll(async () => {
  await reg?.stop();
});

const ref = (image: string) => parseImageReference(`docker://${reg.host}/${image}`);

describe("pulling the fixture images from a real registry", () => {
  it("follows an OCI index to the host platform", async () => {
    const img = await client.resolveManifest(ref(FIXTURE_IMAGES.busybox));
    expect(img.topDigest).toBe(layoutDigest("busybox"));
    expect(img.manifestDigest).toBe(layoutDigest("busybox-amd64"));
    expect(img.manifestMediaType).toBe(OCI_MANIFEST);
    expect(img.platform).toMatchObject({ os: "linux", architecture: "amd64" });
    expect(img.reference).toBe(`${reg.host}/fixtures/busybox:latest`);
    const layers = await drainLayers(img, (d) => client.fetchBlob(ref(FIXTURE_IMAGES.busybox), d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
    expect(img.config.cmd).toEqual(["/bin/sh"]);
  });

  it("resolves a reference pinned by digest", async () => {
    const pinned = parseImageReference(`${reg.host}/fixtures/busybox@${layoutDigest("busybox")}`);
    const img = await client.resolveManifest(pinned);
    expect(img.manifestDigest).toBe(layoutDigest("busybox-amd64"));
  });

  it("follows a Docker manifest list to a v2s2 manifest", async () => {
    const img = await client.resolveManifest(ref(FIXTURE_IMAGES.busyboxDocker));
    expect(img.topDigest).not.toBe(img.manifestDigest);
    expect(img.manifestMediaType).toBe(DOCKER_MANIFEST);
    expect(img.manifest.layers[0]?.mediaType).toBe("application/vnd.docker.image.rootfs.diff.tar.gzip");
    const layers = await drainLayers(img, (d) => client.fetchBlob(ref(FIXTURE_IMAGES.busyboxDocker), d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it.each([
    [
      "v2s2",
      FIXTURE_IMAGES.busyboxV2s2,
      DOCKER_MANIFEST,
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ],
    ["OCI", FIXTURE_IMAGES.busyboxOci, OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+gzip"],
    ["zstd", FIXTURE_IMAGES.busyboxZstd, OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+zstd"],
    [
      "uncompressed",
      FIXTURE_IMAGES.busyboxUncompressed,
      OCI_MANIFEST,
      "application/vnd.oci.image.layer.v1.tar",
    ],
  ])("pulls a single %s manifest with verified layers", async (_name, image, mediaType, layerType) => {
    const img = await client.resolveManifest(ref(image));
    expect(img.topDigest).toBe(img.manifestDigest);
    expect(img.manifestMediaType).toBe(mediaType);
    expect(img.manifest.layers.map((l) => l.mediaType)).toEqual([layerType]);
    const layers = await drainLayers(img, (d) => client.fetchBlob(ref(image), d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
    expect(layers[0]?.bytes).toBeGreaterThan(1_000_000);
    if (layerType.endsWith(".tar")) expect(img.manifest.layers[0]?.digest).toBe(img.config.diffIds[0]);
  });

  it("pulls the 3-layer features image", async () => {
    const img = await client.resolveManifest(ref(FIXTURE_IMAGES.features));
    expect(img.manifestDigest).toBe(layoutDigest("features"));
    expect(img.manifest.layers).toHaveLength(3);
    const layers = await drainLayers(img, (d) => client.fetchBlob(ref(FIXTURE_IMAGES.features), d));
    expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  });

  it("reports a missing tag as not_found manifest unknown", async () => {
    const missing = parseImageReference(`${reg.host}/fixtures/busybox:nope`);
    const e = await appErrorOf(client.resolveManifest(missing));
    expect(e.kind).toBe("not_found");
    expect(e.message).toBe(`manifest unknown: ${reg.host}/fixtures/busybox:nope`);
    const e2 = await appErrorOf(client.resolveManifest(parseImageReference(`${reg.host}/no/such/repo`)));
    expect(e2.kind).toBe("not_found");
  });

  it("reports a platform the index does not have", async () => {
    const e = await appErrorOf(
      client.resolveManifest(ref(FIXTURE_IMAGES.busybox), {
        platform: { os: "linux", architecture: "s390x" },
      }),
    );
    expect(e.kind).toBe("not_found");
    expect(e.message).toMatch(/no manifest for platform linux\/s390x .*has: linux\/amd64/);
  });

  it("reports an unknown blob as not_found", async () => {
    const img = await client.resolveManifest(ref(FIXTURE_IMAGES.busyboxOci));
    const layer = img.manifest.layers[0];
    if (!layer) throw new Error("no layer");
    const e = await appErrorOf(
      client.fetchBlob(ref(FIXTURE_IMAGES.busyboxOci), {
        ...layer,
        digest: img.config.diffIds[0] ?? layer.digest,
      }),
    );
    expect(e.kind).toBe("not_found");
    expect(e.message).toMatch(/blob unknown/);
  });
});
