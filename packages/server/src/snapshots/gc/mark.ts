import type { Repos } from "../../metadata/metadata-store.js";
import type { GcImage, GcLayer } from "../../metadata/repos/gc-repo.js";

/** What the mark found: the layer rows that existed when it began and which of them are live. */
export interface Mark {
  startedAt: number;
  /** Images inserted after this rowid were not seen by the mark: the sweep re-reads them. */
  maxImageRowid: number;
  /** Layer rows read before anything else: only these can be candidates. */
  layers: GcLayer[];
  /** Layer ids in use: mount chains of live images, leases, inputs of unfinished operations. */
  liveLayers: Set<string>;
  images: GcImage[];
  /** Image rows a lease or an unfinished operation holds (tombstones included). */
  heldImages: Set<string>;
}

/**
 * The images and layers held right now besides live images: unexpired leases (their images'
 * current chains and their layers) and the input images of operations that are not terminal.
 * The mark reads it, and every sweep transaction reads it again under the write lock.
 */
export async function held(repos: Repos, now: number): Promise<{ images: Set<string>; layers: Set<string> }> {
  const images = new Set<string>();
  const layers = new Set<string>();
  for (const l of await repos.leases.live(now)) {
    for (const id of l.imageIds) images.add(id);
    for (const id of l.layerIds) layers.add(id);
  }
  for (const op of await repos.gc.activeInputs()) if (op.imageId !== null) images.add(op.imageId);
  for (const chain of await repos.gc.chainsOf([...images])) for (const id of chain) layers.add(id);
  return { images, layers };
}

/**
 * Marks without a transaction (a long one would hold the server's only connection). That is
 * safe because of the order: layer rows and the highest image rowid are read first, so a layer
 * that became needed later is either newer than the candidates or reached through something
 * the sweep re-reads under its write lock (a lease, an unfinished operation, a newer image).
 */
export async function mark(repos: Repos, now = Date.now()): Promise<Mark> {
  const maxImageRowid = await repos.gc.maxImageRowid();
  const layers = await repos.gc.layers();
  const h = await held(repos, now);
  const liveLayers = h.layers;
  for (const id of await repos.gc.liveChainLayers()) liveLayers.add(id);
  const images = await repos.gc.images();
  return { startedAt: now, maxImageRowid, layers, liveLayers, images, heldImages: h.images };
}

/**
 * Tombstones no live image needs: not an ancestor of a live image, not held. Parents of a kept
 * row are kept too, so no remaining row's parent is removed.
 */
export function removableTombstones(images: readonly GcImage[], held: ReadonlySet<string>): GcImage[] {
  const byId = new Map(images.map((i) => [i.id, i]));
  const keep = new Set<string>();
  for (const img of images) {
    if (img.deleted && !held.has(img.id)) continue;
    let cur: GcImage | undefined = img;
    while (cur && !keep.has(cur.id)) {
      keep.add(cur.id);
      cur = cur.parentId === null ? undefined : byId.get(cur.parentId);
    }
  }
  return images.filter((i) => i.deleted && !keep.has(i.id)).sort((a, b) => b.depth - a.depth);
}
