/**
 * Decompression bombs (issue 10 §3): a 10 MB gzip layer that unpacks to 2.15 GB, and a layer
 * of many empty files. A tenant with an ordinary token imports them; the import must stop as
 * soon as the project's images_import_max_unpacked_bytes is passed, fail with a clear error,
 * and leave nothing behind: no staging dir, no layer dir, no layer or image row (the image's
 * first, harmless layer included).
 */
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TarWriterEntry, writeTar } from "../../src/layers/tar-writer.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { pushImage, type RegistryHandle, startRegistry } from "../harness/registry.js";
import { tenant } from "../harness/tenant.js";

const MiB = 1024 * 1024;

/** A layer as (gzip blob, diff id), built by streaming: the 2.15 GB never sits in memory. */
async function gzipLayer(entries: Iterable<TarWriterEntry>): Promise<{ blob: Buffer; diffId: string }> {
  const hash = createHash("sha256");
  const tar = writeTar(entries);
  tar.on("data", (c: Buffer) => hash.update(c));
  const gz = tar.pipe(createGzip({ level: 1 }));
  const parts: Buffer[] = [];
  for await (const c of gz) parts.push(c as Buffer);
  return { blob: Buffer.concat(parts), diffId: `sha256:${hash.digest("hex")}` };
}

function* zeros(total: number): Generator<Uint8Array> {
  const chunk = Buffer.alloc(4 * MiB);
  for (let left = total; left > 0; left -= chunk.length)
    yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

const file = (name: string, size: number, body?: () => Iterable<Uint8Array>): TarWriterEntry => ({
  name,
  type: "file",
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: 0,
  size,
  ...(body ? { body: async () => body() } : { body: async () => [] }),
});

describe("import unpacked-size limit", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let attacker: Awaited<ReturnType<typeof tenant>>;
  const LIMIT = 256 * MiB;

  beforeAll(async () => {
    reg = await startRegistry();
    t = await startTestServer({ runtime: "oci" });
    attacker = await tenant(t, "bombs");
    // What an operator sets for the project (admin CLI / store); the tenant only imports.
    await t.server.store.projects.setLimits(attacker.projectId, { images_import_max_unpacked_bytes: LIMIT });
    const small = await gzipLayer([file("hello", 5, () => [Buffer.from("hello")])]);
    const bomb = await gzipLayer([file("zeros", 2_150_000_000, () => zeros(2_150_000_000))]);
    expect(bomb.blob.length).toBeLessThan(10 * 1000 * 1000);
    await pushImage(reg, "bombs/zeros", [small, bomb]);
    // 100,000 empty files: no content at all, ~50 MB of tar headers (the limit is lowered for it).
    const empties = function* () {
      for (let i = 0; i < 100_000; i++) yield file(`d${i % 100}/f${i}`, 0);
    };
    await pushImage(reg, "bombs/empties", [small, await gzipLayer(empties())]);
    // A hardlink to a lower layer's file copies the whole file up into the new layer: a 20 MiB
    // file and 20 layers of one hardlink each are ~440 MiB on disk from a few hundred tar bytes.
    const big = await gzipLayer([file("big", 20 * MiB, () => zeros(20 * MiB))]);
    const links = [];
    for (let i = 0; i < 20; i++) {
      links.push(await gzipLayer([{ ...file(`l${i}`, 0), type: "hardlink", linkname: "big" }]));
    }
    await pushImage(reg, "bombs/hardlinks", [big, ...links]);
  }, 300_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  it("whoami shows the limit beside the existing ones", async () => {
    const me = (await (await attacker.api("/v1/whoami")).json()) as { limits: Record<string, number> };
    expect(me.limits["images_import_max_unpacked_bytes"]).toBe(LIMIT);
    expect(me.limits["instance_max_layer_bytes"]).toBe(12 * 1024 * MiB);
  });

  for (const [repo, limit] of [
    ["bombs/zeros", LIMIT],
    ["bombs/empties", 16 * MiB],
    ["bombs/hardlinks", 64 * MiB],
  ] as const) {
    it(`${repo}: stops at the limit with a clear error and leaves nothing behind`, async () => {
      await t.server.store.projects.setLimits(attacker.projectId, {
        images_import_max_unpacked_bytes: limit,
      });
      const layersBefore = new Set(await t.server.store.images.allLayerIds());
      const dirsBefore = new Set(await readdir(join(t.dataDir, "layers")));
      const r = await attacker.api("/v1/images/import", {
        method: "POST",
        json: { registry: { url: `docker://${reg.host}/${repo}` }, tag: "bomb" },
      });
      const j = (await r.json()) as { uuid: string; error?: string };
      expect(r.status, j.error).toBe(202);
      const op = await waitOperation(attacker, j.uuid, 300_000);
      expect(op["status"]).toBe("FAILED");
      expect(String(op["error"])).toBe(
        `the image unpacks to more than ${limit} bytes (images_import_max_unpacked_bytes): import stopped`,
      );
      expect(await t.server.store.images.allLayerIds()).toEqual([...layersBefore]);
      expect(new Set(await readdir(join(t.dataDir, "layers")))).toEqual(dirsBefore);
      expect(await readdir(join(t.dataDir, "staging"))).toEqual([]);
      const images = (await (await attacker.api("/v1/images?tag=bomb")).json()) as { images: unknown[] };
      expect(images.images).toEqual([]);
    }, 300_000);
  }
});
