import type { MetadataStore, Repos } from "../../metadata/metadata-store.js";
import { held, type Mark, removableTombstones } from "./mark.js";

/**
 * Hard-deletes tombstones no live image needs for lineage, in one write transaction that
 * re-reads what the mark could not see: images inserted since (their ancestors stay), leases and
 * unfinished operations (the images they hold and those images' ancestors stay).
 */
export async function sweepTombstones(store: MetadataStore, mark: Mark, dryRun: boolean): Promise<number> {
  const removable = removableTombstones(mark.images, mark.heldImages);
  if (removable.length === 0) return 0;
  const decide = async (repos: Repos) => {
    const parentOf = new Map(mark.images.map((i) => [i.id, i.parentId]));
    const keep = new Set<string>();
    const keepWithAncestors = (id: string | null) => {
      let cur = id;
      while (cur !== null && cur !== undefined && !keep.has(cur)) {
        keep.add(cur);
        cur = parentOf.get(cur) ?? null;
      }
    };
    const newer = await repos.gc.imagesAfter(mark.maxImageRowid);
    for (const img of newer) parentOf.set(img.id, img.parentId);
    for (const img of newer) keepWithAncestors(img.id);
    for (const id of (await held(repos, Date.now())).images) keepWithAncestors(id);
    return removable.filter((i) => !keep.has(i.id));
  };
  if (dryRun) return (await decide(store)).length;
  return store.transaction(async (tx) => {
    await tx.gc.lockForWrite();
    const gone = await decide(tx);
    await tx.gc.deleteImages(gone.map((i) => i.id));
    return gone.length;
  });
}
