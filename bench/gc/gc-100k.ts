/**
 * GC time for 100,000 images: synthetic rows (a bushy tree of runs over imported bases, mount
 * chains capped at 24 as flattening keeps them, a share of them deleted, a few leases and queued
 * operations) over real SQLite and one small real dir per layer. Prints mark, sweep and total
 * time (median of several passes) for dry passes (everything is decided, nothing removed), the
 * one real pass that removes the garbage, and steady passes afterwards (nothing left to remove),
 * each with the longest event-loop stall it caused (what a server's requests would wait).
 *
 *   npx tsx bench/gc/gc-100k.ts
 *   BENCH_IMAGES=20000 BENCH_PASSES=3 BENCH_DELETED=0.5 npx tsx bench/gc/gc-100k.ts
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Readable } from "node:stream";
import { LocalContentStore } from "../../packages/server/src/content/local/local-content-store.js";
import { hexOf } from "../../packages/server/src/core/digest.js";
import { newId } from "../../packages/server/src/core/ids.js";
import type { ImagesTable, LayersTable } from "../../packages/server/src/metadata/schema.js";
import { SqliteMetadataStore } from "../../packages/server/src/metadata/sqlite/sqlite-metadata-store.js";
import { GarbageCollector } from "../../packages/server/src/snapshots/gc/garbage-collector.js";
import type { GcReport } from "../../packages/server/src/snapshots/gc/gc-report.js";
import { LayerStore } from "../../packages/server/src/snapshots/layer-store.js";
import { LeaseManager } from "../../packages/server/src/snapshots/leases.js";

const IMAGES = Number(process.env["BENCH_IMAGES"] ?? 100_000);
const PASSES = Number(process.env["BENCH_PASSES"] ?? 5);
const DELETED = Number(process.env["BENCH_DELETED"] ?? 0.4);
const MAX_CHAIN = 24;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

/** Deterministic pseudo-random numbers (mulberry32), so runs are comparable. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function inBatches<T>(
  items: readonly T[],
  size: number,
  fn: (batch: T[]) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < items.length; i += size) await fn(items.slice(i, i + size));
}

async function build(
  root: string,
  store: SqliteMetadataStore,
  layers: LayerStore,
  content: LocalContentStore,
) {
  const rand = rng(42);
  const project = await store.projects.create("bench");
  const now = Date.now() - 3_600_000;
  const images: ImagesTable[] = [];
  const layerRows: LayersTable[] = [];
  const chains: string[][] = [];
  for (let i = 0; i < IMAGES; i++) {
    const root0 = i % 100 === 0 || i < 10;
    const layer = `${root0 ? "i" : "r"}${newId().replace(/-/g, "").slice(0, 24)}`;
    layerRows.push({
      id: layer,
      kind: root0 ? "import" : "run",
      chain_id: null,
      size: 64,
      entries: 1,
      created_at: now,
    });
    // a bushy tree: parents among the recent images, as agents fork from recent states
    const parent = root0 ? -1 : i - 1 - Math.floor(rand() * Math.min(i, 1000));
    const chain = parent < 0 ? [layer] : [layer, ...(chains[parent] as string[])].slice(0, MAX_CHAIN);
    chains.push(chain);
    images.push({
      id: newId(),
      project_id: project.id,
      parent_id: parent < 0 ? null : (images[parent] as ImagesTable).id,
      layer_id: layer,
      mount_chain: JSON.stringify(chain),
      depth: parent < 0 ? 0 : (images[parent] as ImagesTable).depth + 1,
      env: null,
      operation_id: null,
      size: 64,
      source: null,
      created_at: now + i,
      deleted_at: rand() < DELETED ? now + IMAGES : null,
      last_used_at: null,
    });
  }
  await inBatches(layerRows, 500, async (b) => {
    await store.db.insertInto("layers").values(b).execute();
  });
  await inBatches(images, 500, async (b) => {
    await store.db.insertInto("images").values(b).execute();
  });
  // small real dirs, one per layer
  await inBatches(layerRows, 64, async (b) => {
    await Promise.all(
      b.map(async (l) => {
        await mkdir(layers.path(l.id));
        await writeFile(join(layers.path(l.id), "f"), l.id.padEnd(64, "."));
      }),
    );
  });
  // a few leases and queued runs on deleted images, uploads named and not
  const leases = new LeaseManager(store);
  const deleted = images.filter((i) => i.deleted_at !== null);
  for (let i = 0; i < 10; i++)
    await leases.acquire({ kind: "inspect", images: [(deleted[i * 7] as ImagesTable).id] });
  for (let i = 0; i < 20; i++)
    await store.operations.insert({
      id: newId(),
      projectId: project.id,
      kind: "instance",
      metadata: {},
      imageId: (deleted[100 + i * 11] as ImagesTable).id,
      createdAt: now,
    });
  for (let i = 0; i < 1500; i++) {
    const b = await content.ingest(Readable.from([Buffer.from(`blob ${i}`)]));
    if (i < 1000) await store.files.upsert(project.id, hexOf(b.digest), b.size);
  }
  leases.close();
  return { layers: layerRows.length, deleted: deleted.length, root };
}

/** A pass with the longest event-loop stall it caused (SQLite calls are synchronous). */
async function timed(gc: GarbageCollector, dryRun: boolean): Promise<GcReport & { stallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const r = await gc.run({ dryRun });
  h.disable();
  return { ...r, stallMs: Math.round(h.max / 1e6) };
}

function line(label: string, rs: Array<GcReport & { stallMs: number }>): string {
  const m = (f: (r: GcReport & { stallMs: number }) => number) => String(median(rs.map(f))).padStart(6);
  return `${label.padEnd(28)} mark ${m((r) => r.markMs)} ms   sweep ${m((r) => r.sweepMs)} ms   total ${m(
    (r) => r.durationMs,
  )} ms   longest stall ${m((r) => r.stallMs)} ms   (n=${rs.length})`;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "contree-bench-gc100k-"));
  const store = SqliteMetadataStore.open(join(root, "metadata.db"));
  try {
    const layers = await LayerStore.open(root);
    const content = await LocalContentStore.open(join(root, "content"));
    const t0 = Date.now();
    const built = await build(root, store, layers, content);
    process.stdout.write(
      `${IMAGES} images (${built.deleted} deleted), ${built.layers} layers with dirs, 1500 blobs; built in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
    const gc = new GarbageCollector({ store, layers, content, runsDir: join(root, "runs"), graceMs: 0 });
    const dry: Array<GcReport & { stallMs: number }> = [];
    for (let i = 0; i < PASSES; i++) dry.push(await timed(gc, true));
    const real = await timed(gc, false);
    const steady: Array<GcReport & { stallMs: number }> = [];
    for (let i = 0; i < PASSES; i++) steady.push(await timed(gc, false));
    process.stdout.write(`${line("dry pass", dry)}\n`);
    process.stdout.write(`${line("real pass (removes garbage)", [real])}\n`);
    process.stdout.write(`${line("steady pass (nothing to do)", steady)}\n`);
    process.stdout.write(
      `real pass removed ${real.layersRemoved} layers, ${real.tombstonesRemoved} image rows, ${real.blobsRemoved} blobs, ${real.bytesFreed} bytes\n`,
    );
    await gc.close();
  } finally {
    await store.close();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
