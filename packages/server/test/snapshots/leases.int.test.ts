/**
 * Leases taken through the real server: a run holds the chain it mounted while it runs, an
 * inspect download holds its image while it streams, and both are gone once they end.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { LeaseRecord } from "../../src/metadata/repos/lease-repo.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

describe("leases of runs and inspect streams", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let base: string;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    ({ registry: reg, image: base } = await importBusybox(t));
  }, 300_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  const leases = (kind: string): Promise<LeaseRecord[]> =>
    t.server.store.leases.live().then((all) => all.filter((l) => l.kind === kind));
  const spawn = async (image: string, command: string) => {
    const r = await t.api("/v1/instances", { method: "POST", json: { command, shell: true, image } });
    expect(r.status).toBe(202);
    return ((await r.json()) as { uuid: string }).uuid;
  };

  it("a run leases the chain it mounted until its snapshot is removed", async () => {
    const img = await t.server.store.images.getAny(base);
    // The run waits for a file that appears only once we saw its lease.
    const op = await spawn(base, "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done > /out");
    const held = await vi.waitFor(
      async () => {
        const l = await leases("run");
        if (l.length !== 1) throw new Error("no run lease yet");
        return l[0] as LeaseRecord;
      },
      { timeout: 30_000, interval: 50 },
    );
    expect(held).toMatchObject({ imageIds: [base], layerIds: img?.mountChain });
    // The lease is taken while the rootfs is prepared, before the sandbox starts: a subprocess
    // can be started once the main process has been spawned (425 before).
    await vi.waitFor(
      async () => {
        const events = await (await t.api(`/v1/operations/${op}/events?spid=1`)).text();
        if (!events.includes("spawn")) throw new Error("main process not spawned yet");
      },
      { timeout: 30_000, interval: 50 },
    );
    const exec = await t.api(`/v1/operations/${op}/subprocesses`, {
      method: "POST",
      json: { command: "touch /tmp/go", shell: true },
    });
    expect(exec.status, await exec.clone().text()).toBeLessThan(300);
    const done = await waitOperation(t, op);
    expect(done["status"]).toBe("SUCCESS");
    // The snapshot's removal (and its lease) is the run's cleanup, after the completion.
    await vi.waitFor(
      async () => {
        if ((await leases("run")).length > 0) throw new Error("run lease still held");
      },
      { timeout: 30_000, interval: 50 },
    );
  });

  it("an inspect download holds its image while it streams, and lets go when it ends", async () => {
    const op = await spawn(base, "head -c 67108864 /dev/zero > /big");
    const done = await waitOperation(t, op);
    expect(done["status"]).toBe("SUCCESS");
    const img = String(done["result_image_uuid"]);
    const rec = await t.server.store.images.getAny(img);
    const r = await t.api(`/v1/inspect/${img}/download?path=/big`);
    expect(r.status).toBe(200);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    // 64 MiB cannot all sit in socket buffers: the response is still streaming.
    expect(await leases("inspect")).toEqual([
      expect.objectContaining({ imageIds: [img], layerIds: rec?.mountChain }),
    ]);
    let bytes = first.value?.length ?? 0;
    for (;;) {
      const c = await reader.read();
      if (c.done) break;
      bytes += c.value.length;
    }
    expect(bytes).toBe(64 * 1024 * 1024);
    await vi.waitFor(
      async () => {
        if ((await leases("inspect")).length > 0) throw new Error("inspect lease still held");
      },
      { timeout: 30_000, interval: 50 },
    );
    // A listing takes and gives back its lease within the request.
    expect((await t.api(`/v1/inspect/${img}/list?path=/`)).status).toBe(200);
    await vi.waitFor(
      async () => {
        if ((await leases("inspect")).length > 0) throw new Error("inspect lease still held");
      },
      { timeout: 30_000, interval: 50 },
    );
  });
});
