import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { digestFromHex } from "../../src/core/digest.js";
import { newId } from "../../src/core/ids.js";
import { mark } from "../../src/snapshots/gc/mark.js";
import { sweepLayerRows } from "../../src/snapshots/gc/sweep-layers.js";
import { LeaseManager } from "../../src/snapshots/leases.js";
import { type GcFixture, gcFixture } from "./gc-fixture.js";

let fx: GcFixture;
beforeEach(async () => {
  fx = await gcFixture();
});
afterEach(async () => {
  await fx.close();
});

describe("mark and sweep", () => {
  it("keeps live and tagged images; a deleted leaf loses its row, its layer row and its dir", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    const b = await fx.image(a);
    const tagged = await fx.image(base);
    await fx.tag(tagged, "keep:me");
    await fx.remove(b);
    const r = await fx.gc().run();
    expect(r).toMatchObject({ dryRun: false, layersRemoved: 1, tombstonesRemoved: 1 });
    expect(r.bytesFreed).toBe(100);
    expect(await fx.imageIds()).toEqual([base.id, a.id, tagged.id].sort());
    expect(existsSync(fx.layers.path(b.layerId as string))).toBe(false);
    expect(await fx.store.images.layer(b.layerId as string)).toBeUndefined();
    for (const img of [base, a, tagged]) expect(await fx.readable(img.id)).toBe(true);
    // nothing more to do
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 0, tombstonesRemoved: 0, bytesFreed: 0 });
  });

  it("a deleted parent stays (lineage, layers) while a child lives; both go after the child", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    const b = await fx.image(a);
    await fx.remove(a);
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 0, tombstonesRemoved: 0 });
    expect(await fx.readable(b.id)).toBe(true);
    expect(await fx.imageIds()).toContain(a.id);
    await fx.remove(b);
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 2, tombstonesRemoved: 2 });
    expect(await fx.imageIds()).toEqual([base.id]);
    expect(await fx.readable(base.id)).toBe(true);
  });

  it("layers replaced by flattening go; the flattened image and its lineage stay readable", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    const b = await fx.image(a);
    const c = await fx.image(b);
    const flat = await fx.flatten(c);
    expect((await fx.store.images.getAny(c.id))?.mountChain).toEqual([flat]);
    // c's own layer was only in its old chain; the rest are in live ancestors' chains
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 1 });
    expect(await fx.store.images.layer(c.layerId as string)).toBeUndefined();
    await fx.remove(b);
    await fx.remove(a);
    // a and b: rows kept (c's lineage); their layers now in no live chain
    const r = await fx.gc().run();
    expect(r).toMatchObject({ layersRemoved: 2, tombstonesRemoved: 0 });
    expect(await fx.imageIds()).toEqual([base.id, a.id, b.id, c.id].sort());
    expect(await fx.readable(c.id)).toBe(true);
    expect(await fx.readable(base.id)).toBe(true);
    expect((await fx.store.images.getAny(a.id))?.layerId).toBeNull();
    expect(await fx.layerIds()).toEqual([base.layerId as string, flat].sort());
    await fx.remove(base);
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 1, tombstonesRemoved: 0 });
    expect(await fx.layerIds()).toEqual([flat]);
    expect(await fx.readable(c.id)).toBe(true);
  });

  it("a lease keeps its images (with their chains) and layers; an expired lease protects nothing and goes", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    const loose = await fx.layer();
    await fx.remove(a);
    await fx.remove(base);
    const leases = new LeaseManager(fx.store);
    const lease = await leases.acquire({ kind: "inspect", images: [a.id], layers: [loose] });
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 0, tombstonesRemoved: 0, leasesExpired: 0 });
    expect(await fx.readable(a.id)).toBe(true);
    expect(existsSync(fx.layers.path(loose))).toBe(true);
    // the holder died: its lease ran out
    await fx.store.db
      .updateTable("leases")
      .set({ expires_at: Date.now() - 1 })
      .where("id", "=", lease.id)
      .execute();
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 3, tombstonesRemoved: 2, leasesExpired: 1 });
    expect(await fx.layerIds()).toEqual([]);
    leases.close();
  });

  it("an unfinished operation holds its input image and the blobs of its files", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    const f = await fx.upload("input file");
    const op = newId();
    await fx.store.operations.insert({
      id: op,
      projectId: fx.projectId,
      kind: "instance",
      metadata: { files: { "/etc/x": { uuid: f.fileId, mode: 0o644, uid: 0, gid: 0 } } },
      imageId: a.id,
      createdAt: Date.now(),
    });
    await fx.remove(a);
    await fx.remove(base);
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 0, tombstonesRemoved: 0, blobsRemoved: 0 });
    expect(await fx.readable(a.id)).toBe(true);
    await fx.store.operations.complete(op, { status: "SUCCESS" });
    expect(await fx.gc().run()).toMatchObject({ layersRemoved: 2, tombstonesRemoved: 2, blobsRemoved: 0 });
    // the file row (retention's to expire) still names the blob
    expect(await fx.content.info(digestFromHex(f.hex))).toBeDefined();
    await fx.store.db.deleteFrom("files").where("id", "=", f.fileId).execute();
    expect(await fx.gc().run()).toMatchObject({ blobsRemoved: 1 });
    expect(await fx.content.info(digestFromHex(f.hex))).toBeUndefined();
  });

  it("orphans: old dirs and blobs without a row go, young ones stay (grace)", async () => {
    const grace = 60_000;
    const base = await fx.image();
    const young = "rorphanyoung0000000000000";
    const old = "rorphanold00000000000000";
    for (const id of [young, old]) {
      await mkdir(fx.layers.path(id));
      await writeFile(join(fx.layers.path(id), "x"), "12345");
    }
    await fx.age(fx.layers.path(old), 2 * grace);
    const kept = await fx.upload("named");
    const fresh = await fx.content.ingest(Readable.from([Buffer.from("fresh")]));
    const stale = await fx.content.ingest(Readable.from([Buffer.from("stale")]));
    await fx.age(fx.content.localPath(stale.digest), 2 * grace);
    // staging of a dead process (pid beyond pid_max) and of this one
    const deadStaging = join(fx.layers.stagingDir, "4194305.dead");
    const ownStaging = join(fx.layers.stagingDir, `${process.pid}.mine`);
    for (const d of [deadStaging, ownStaging]) await mkdir(d);
    await fx.age(deadStaging, 2 * grace);
    await fx.age(ownStaging, 2 * grace);
    // run dirs: a finished operation's and a running one's
    const done = newId();
    const running = newId();
    for (const [id, status] of [
      [done, "SUCCESS"],
      [running, "EXECUTING"],
    ] as const) {
      await fx.store.operations.insert({
        id,
        projectId: fx.projectId,
        kind: "instance",
        metadata: {},
        createdAt: 0,
      });
      if (status !== "EXECUTING") await fx.store.operations.complete(id, { status });
      else await fx.store.operations.transition(id, ["PENDING"], "EXECUTING");
      await mkdir(join(fx.runsDir, id, "upper"), { recursive: true });
      await fx.age(join(fx.runsDir, id), 2 * grace);
    }
    const dry = await fx.gc({ graceMs: grace }).run({ dryRun: true });
    const r = await fx.gc({ graceMs: grace }).run();
    expect(r).toMatchObject({ layersRemoved: 1, blobsRemoved: 1, stagingRemoved: 1, runDirsRemoved: 1 });
    expect({ ...dry, dryRun: false, startedAt: 0, durationMs: 0, markMs: 0, sweepMs: 0 }).toEqual({
      ...r,
      startedAt: 0,
      durationMs: 0,
      markMs: 0,
      sweepMs: 0,
    });
    expect(existsSync(fx.layers.path(old))).toBe(false);
    expect(existsSync(fx.layers.path(young))).toBe(true);
    expect(await fx.content.info(stale.digest)).toBeUndefined();
    expect(await fx.content.info(fresh.digest)).toBeDefined();
    expect(await fx.content.info(digestFromHex(kept.hex))).toBeDefined();
    expect(existsSync(deadStaging)).toBe(false);
    expect(existsSync(ownStaging)).toBe(true);
    expect(existsSync(join(fx.runsDir, done))).toBe(false);
    expect(existsSync(join(fx.runsDir, running))).toBe(true);
    expect(await fx.readable(base.id)).toBe(true);
  });

  it("a dry run changes nothing and reports what the real pass then frees", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    await fx.image(a);
    await fx.remove(a);
    const leaf = await fx.image(base);
    await fx.remove(leaf);
    const before = { layers: await fx.layerIds(), images: await fx.imageIds() };
    const dry = await fx.gc().run({ dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, layersRemoved: 1, tombstonesRemoved: 1, bytesFreed: 100 });
    expect({ layers: await fx.layerIds(), images: await fx.imageIds() }).toEqual(before);
    expect(existsSync(fx.layers.path(leaf.layerId as string))).toBe(true);
    const real = await fx.gc().run();
    expect(real).toMatchObject({ layersRemoved: 1, tombstonesRemoved: 1, bytesFreed: 100 });
  });

  it("layer rows younger than the grace stay (a writer may not have recorded its image yet)", async () => {
    const young = await fx.layer({ createdAt: Date.now() });
    const old = await fx.layer({ createdAt: Date.now() - 120_000 });
    expect(await fx.gc({ graceMs: 60_000 }).run()).toMatchObject({ layersRemoved: 1 });
    expect(await fx.layerIds()).toEqual([young]);
    expect(existsSync(fx.layers.path(old))).toBe(false);
  });

  it("retention runs first (beforeMark) and its counts are in the report", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    const seen: unknown[] = [];
    const gc = fx.gc({
      beforeMark: async () => {
        await fx.remove(a);
        return { imagesExpired: 1, filesExpired: 3 };
      },
      onReport: (r) => seen.push(r),
    });
    const r = await gc.run();
    expect(r).toMatchObject({ imagesExpired: 1, filesExpired: 3, layersRemoved: 1, tombstonesRemoved: 1 });
    expect(seen).toEqual([r]);
    // dry runs do not expire anything
    expect(await gc.run({ dryRun: true })).toMatchObject({ imagesExpired: 0, filesExpired: 0 });
  });
});

describe("racing the sweep", () => {
  it("an image created after the mark keeps the layers its chain uses", async () => {
    const base = await fx.image();
    const a = await fx.image(base);
    await fx.remove(a);
    const m = await mark(fx.store);
    expect(m.liveLayers.has(a.layerId as string)).toBe(false);
    // a run queued before the deletion commits its result now, on a's chain
    const child = await fx.image(a);
    const gone = await sweepLayerRows(fx.store, m, { dryRun: false, graceMs: 0 });
    expect(gone).toEqual([]);
    expect(await fx.readable(child.id)).toBe(true);
  });

  it("a lease taken after the mark protects; one checked after the sweep sees the row gone", async () => {
    const loose = await fx.layer({ kind: "import", id: `i${"a".repeat(32)}` });
    const other = await fx.layer({ kind: "import", id: `i${"b".repeat(32)}` });
    const leases = new LeaseManager(fx.store);
    const m = await mark(fx.store);
    const lease = await leases.acquire({ kind: "import", layers: [loose] }, async (tx) => {
      expect(await tx.images.layer(loose)).toBeDefined();
    });
    const gone = await sweepLayerRows(fx.store, m, { dryRun: false, graceMs: 0 });
    expect(gone.map((l) => l.id)).toEqual([other]);
    // the importer's check protocol: the sweep won for `other`, so the check refuses the lease
    const refused = await leases
      .acquire({ kind: "import", layers: [other] }, async (tx) => {
        if (!(await tx.images.layer(other))) throw new Error("layer gone: fetch it again");
      })
      .then(
        () => "leased",
        (err: Error) => err.message,
      );
    expect(refused).toBe("layer gone: fetch it again");
    expect((await fx.store.leases.live()).map((l) => l.id)).toEqual([lease.id]);
    await lease.release();
    leases.close();
  });

  it("a second caller joins the running pass; a pass elsewhere is waited for", async () => {
    const base = await fx.image();
    await fx.remove(base);
    const gc = fx.gc();
    const [r1, r2] = await Promise.all([gc.run(), gc.run()]);
    expect(r2).toBe(r1);
    expect(r1.layersRemoved).toBe(1);
    // another live process holds the gc lock: this pass waits until it lets go
    const other = new LeaseManager(fx.store, { holder: `${hostname()}:1` });
    const held = await other.acquire({ kind: "gc" });
    let done = false;
    const waiting = fx
      .gc()
      .run()
      .then(() => {
        done = true;
      });
    await new Promise((r) => setTimeout(r, 1200));
    expect(done).toBe(false);
    await held.release();
    await waiting;
    expect(done).toBe(true);
    // a holder that died on this host does not hold it
    const dead = new LeaseManager(fx.store, { holder: `${hostname()}:4194305` });
    await dead.acquire({ kind: "gc" });
    expect((await fx.gc().run()).dryRun).toBe(false);
    other.close();
    dead.close();
  });
});
