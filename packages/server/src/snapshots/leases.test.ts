import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteMetadataStore } from "../metadata/sqlite/sqlite-metadata-store.js";
import { LeaseManager } from "./leases.js";

describe("LeaseManager", () => {
  let dir: string;
  let store: SqliteMetadataStore;
  let clock = 1_000_000;
  const now = () => clock;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-leases-"));
    store = SqliteMetadataStore.open(join(dir, "metadata.db"));
    clock = 1_000_000;
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("holds what it names until released, and a second release is harmless", async () => {
    const m = new LeaseManager(store, { holder: "test", ttlMs: 60_000, now });
    const lease = await m.acquire({ kind: "run", projectId: "p", images: ["i1"], layers: ["l1", "l2"] });
    const live = await store.leases.live(clock);
    expect(live).toMatchObject([
      { id: lease.id, holder: "test", kind: "run", imageIds: ["i1"], layerIds: ["l1", "l2"] },
    ]);
    await lease.release();
    await lease.release();
    expect(await store.leases.live(clock)).toEqual([]);
    m.close();
  });

  it("survives a restart (it is a row) and expires when its holder stops renewing", async () => {
    const m = new LeaseManager(store, { holder: "dead", ttlMs: 60_000, now });
    await m.acquire({ kind: "import", layers: ["l1"] });
    m.close();
    await store.close();
    store = SqliteMetadataStore.open(join(dir, "metadata.db"));
    expect(await store.leases.live(clock + 59_000)).toHaveLength(1);
    expect(await store.leases.live(clock + 60_000)).toHaveLength(0);
    expect(await store.leases.deleteExpired(clock + 60_000)).toBe(1);
  });

  it("renewal pushes the expiry of every lease the process holds", async () => {
    const m = new LeaseManager(store, { holder: "alive", ttlMs: 60_000, now });
    await m.acquire({ kind: "inspect", images: ["a"] });
    await m.acquire({ kind: "flatten", images: ["b"] });
    clock += 50_000;
    await m.renew();
    expect(await store.leases.live(clock + 59_000)).toHaveLength(2);
    m.close();
  });

  it("a failing check in the same transaction leaves nothing held", async () => {
    const m = new LeaseManager(store, { holder: "t", now });
    await expect(
      m.acquire({ kind: "import", layers: ["gone"] }, async () => {
        throw new Error("layer vanished");
      }),
    ).rejects.toThrow("layer vanished");
    expect(await store.leases.live(clock)).toEqual([]);
    m.close();
  });

  it("with() releases however the work ends", async () => {
    const m = new LeaseManager(store, { holder: "t", now });
    await expect(
      m.with({ kind: "inspect", images: ["x"] }, async () => Promise.reject(new Error("boom"))),
    ).rejects.toThrow("boom");
    expect(
      await m.with({ kind: "inspect", images: ["x"] }, async () => (await store.leases.live(clock)).length),
    ).toBe(1);
    expect(await store.leases.live(clock)).toEqual([]);
    m.close();
  });
});
