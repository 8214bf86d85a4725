import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_MOUNT_CHAIN } from "../../src/snapshots/compactor.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

describe("deep lineage", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let base: string;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    ({ registry: reg, image: base } = await importBusybox(t));
  });
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function run(image: string, command: string) {
    const r = await t.api("/v1/instances", { method: "POST", json: { command, shell: true, image } });
    const { uuid } = (await r.json()) as { uuid: string };
    return (await waitOperation(t, uuid)) as {
      status: string;
      result: { image: string };
      metadata: { result: { stdout: { value: string } } };
    };
  }

  it("keeps mount chains short while lineage grows, and every file stays visible", async () => {
    const depth = MAX_MOUNT_CHAIN * 2 + 5;
    let img = base;
    const chain: string[] = [];
    for (let i = 0; i < depth; i++) {
      // Every 7th run also deletes the previous file: whiteouts must survive flattening.
      const op = await run(
        img,
        `echo ${i} > /data-${i}; mkdir -p /d; echo ${i} >> /d/log${i % 7 === 6 ? `; rm /data-${i - 1}` : ""}`,
      );
      expect(op.status).toBe("SUCCESS");
      img = op.result.image;
      chain.push(img);
    }
    const final = await run(img, "ls / | grep -c '^data-'; wc -l < /d/log; cat /data-0");
    const expectedFiles = depth - Math.floor(depth / 7);
    expect(final.metadata.result.stdout.value).toBe(`${expectedFiles}\n${depth}\n0\n`);

    const rec = await t.server.store.images.getAny(img);
    expect(rec?.depth).toBe(depth);
    expect(rec?.mountChain.length).toBeLessThanOrEqual(MAX_MOUNT_CHAIN * 2);
    // Lineage never changes: each image's parent is the previous one.
    for (let i = 1; i < chain.length; i++) {
      const r = await t.server.store.images.getAny(chain[i] as string);
      expect(r?.parentId).toBe(chain[i - 1]);
    }
    // An old image in the middle still runs and still sees exactly its own state (rollback).
    const mid = await run(chain[9] as string, "ls / | grep -c '^data-'");
    expect(mid.metadata.result.stdout.value).toBe(`${10 - 1}\n`);
  }, 300_000);
});
