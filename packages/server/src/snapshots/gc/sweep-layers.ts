import type { MetadataStore, Repos } from "../../metadata/metadata-store.js";
import type { LayerStore } from "../layer-store.js";
import { crashPoint } from "./crash-point.js";
import { dirBytes } from "./dir-bytes.js";
import { inParallel } from "./in-parallel.js";
import { held, type Mark } from "./mark.js";

export interface SweepOptions {
  dryRun: boolean;
  graceMs: number;
}

/**
 * Layers a new image, a lease or an unfinished operation uses now although the mark did not
 * see it: read inside the sweep's write transaction, after its lock.
 */
async function neededSince(repos: Repos, mark: Mark): Promise<Set<string>> {
  const h = await held(repos, Date.now());
  for (const img of await repos.gc.imagesAfter(mark.maxImageRowid))
    for (const id of img.chain) h.layers.add(id);
  return h.layers;
}

/**
 * Deletes the rows of unmarked layers (older than the grace) in batches, each in a write
 * transaction that re-reads leases, unfinished operations and images inserted since the mark: a commit, import or
 * flatten racing the pass never loses a layer it uses. Returns the deleted rows.
 */
export async function sweepLayerRows(
  store: MetadataStore,
  mark: Mark,
  o: SweepOptions,
): Promise<Array<{ id: string; size: number }>> {
  const candidates = mark.layers.filter(
    (l) => !mark.liveLayers.has(l.id) && l.createdAt <= mark.startedAt - o.graceMs,
  );
  if (candidates.length === 0) return [];
  const decide = async (repos: Repos) => {
    const needed = await neededSince(repos, mark);
    return candidates.filter((l) => !needed.has(l.id));
  };
  if (o.dryRun) return decide(store);
  // One short write transaction per batch, the event loop free in between: the server's
  // requests and commits wait for one batch at most, never for the whole sweep.
  const gone: Array<{ id: string; size: number }> = [];
  for (let i = 0; i < candidates.length; i += BATCH) {
    const batch = candidates.slice(i, i + BATCH);
    const deleted = await store.transaction(async (tx) => {
      await tx.gc.lockForWrite();
      const needed = await neededSince(tx, mark);
      const out = batch.filter((l) => !needed.has(l.id));
      await tx.gc.deleteLayers(out.map((l) => l.id));
      return out;
    });
    gone.push(...deleted);
    await new Promise<void>((r) => setImmediate(r));
  }
  return gone;
}

/** Rows deleted per write transaction. */
const BATCH = 500;

/**
 * Removes the dirs of layers whose rows are gone: those this pass deleted, and orphans (a dir
 * without a row, older than the grace: a crash between the row and the dir, or an import that
 * published and died before recording). A dir leaves the store with one rename; if a lease or
 * a row named it meanwhile (an import publishing the same layer again), it is put back.
 */
export async function sweepLayerDirs(
  store: MetadataStore,
  layers: LayerStore,
  deleted: ReadonlyArray<{ id: string; size: number }>,
  o: SweepOptions,
): Promise<{ removed: number; orphans: number; bytes: number }> {
  const now = Date.now();
  const sizeOf = new Map(deleted.map((l) => [l.id, l.size]));
  const dirs = await layers.list();
  const rows = await store.gc.existingLayers(dirs.map((d) => d.id));
  const leased = (await held(store, now)).layers;
  // Dry, the rows this pass would delete are still there.
  const targets = dirs.filter(
    (d) =>
      !leased.has(d.id) &&
      ((o.dryRun && sizeOf.has(d.id)) ||
        (!rows.has(d.id) && (sizeOf.has(d.id) || now - d.mtimeMs >= o.graceMs))),
  );
  const bytesOf = new Map<string, number>();
  await inParallel(targets, 16, async (t) => {
    bytesOf.set(t.id, sizeOf.get(t.id) ?? (await dirBytes(layers.path(t.id))));
  });
  if (o.dryRun)
    return {
      removed: targets.length,
      orphans: targets.filter((t) => !sizeOf.has(t.id)).length,
      bytes: sum(bytesOf.values()),
    };
  const detached: Array<{ id: string; path: string }> = [];
  await inParallel(targets, 16, async (t) => {
    const path = await layers.detach(t.id);
    if (path) detached.push({ id: t.id, path });
  });
  const ids = detached.map((d) => d.id);
  const rowsNow = await store.gc.existingLayers(ids);
  const leasedNow = (await held(store, Date.now())).layers;
  let removed = 0;
  let orphans = 0;
  let bytes = 0;
  await inParallel(detached, 16, async (d) => {
    if (rowsNow.has(d.id) || leasedNow.has(d.id)) {
      await layers.reattach(d.path, d.id);
      return;
    }
    await layers.discard(d.path);
    removed++;
    if (!sizeOf.has(d.id)) orphans++;
    bytes += bytesOf.get(d.id) ?? 0;
    crashPoint("layer-dir");
  });
  return { removed, orphans, bytes };
}

function sum(xs: Iterable<number>): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
