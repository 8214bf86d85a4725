import type { MetadataStore, Repos } from "../../metadata/metadata-store.js";
import type { GcImage } from "../../metadata/repos/gc-repo.js";
import { held, type Mark, removableTombstones } from "./mark.js";

/**
 * Hard-deletes tombstones no live image needs for lineage, in batches, each in a write
 * transaction that re-reads what the mark could not see: images inserted since (their ancestors stay), leases and
 * unfinished operations (the images they hold and those images' ancestors stay).
 */
export async function sweepTombstones(store: MetadataStore, mark: Mark, dryRun: boolean): Promise<number> {
  const removable = removableTombstones(mark.images, mark.heldImages);
  if (removable.length === 0) return 0;
  const lineage = new Map(mark.images.map((i) => [i.id, i.parentId]));
  const survivors: string[] = [];
  const decide = async (repos: Repos, candidates: readonly GcImage[]) => {
    const newerParent = new Map<string, string | null>();
    const parentOf = (id: string) => (newerParent.has(id) ? newerParent.get(id) : lineage.get(id));
    const keep = new Set<string>();
    const keepWithAncestors = (id: string | null) => {
      let cur = id;
      while (cur !== null && cur !== undefined && !keep.has(cur)) {
        keep.add(cur);
        cur = parentOf(cur) ?? null;
      }
    };
    const newer = await repos.gc.imagesAfter(mark.maxImageRowid);
    for (const img of newer) newerParent.set(img.id, img.parentId);
    for (const img of newer) keepWithAncestors(img.id);
    for (const id of (await held(repos, Date.now())).images) keepWithAncestors(id);
    // A row an earlier batch kept stays a child of its parent: its ancestors stay too.
    for (const id of survivors) keepWithAncestors(id);
    return candidates.filter((i) => !keep.has(i.id));
  };
  if (dryRun) return (await decide(store, removable)).length;
  // Deepest first, one short write transaction per batch (each decides again under the lock),
  // the event loop free in between.
  let removed = 0;
  for (let i = 0; i < removable.length; i += BATCH) {
    const batch = removable.slice(i, i + BATCH);
    removed += await store.transaction(async (tx) => {
      await tx.gc.lockForWrite();
      const gone = await decide(tx, batch);
      const goneIds = new Set(gone.map((g) => g.id));
      for (const b of batch) if (!goneIds.has(b.id)) survivors.push(b.id);
      await tx.gc.deleteImages([...goneIds]);
      return gone.length;
    });
    await new Promise<void>((r) => setImmediate(r));
  }
  return removed;
}

/** Rows deleted per write transaction. */
const BATCH = 500;
