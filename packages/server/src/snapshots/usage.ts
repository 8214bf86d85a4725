/**
 * Storage usage per project, from the metadata alone (no walk of the data dir): the layers its
 * live images mount and the uploads it holds, split into bytes only it holds (what deleting
 * everything of it would free) and bytes it shares with other projects.
 *
 * - A layer is shared when live images of more than one project mount it (an import of the
 *   same image by two projects reuses its layers by chain id), and always when a live image of
 *   the `public` project mounts it: a base every tenant may build on is nobody's own.
 * - An upload row is shared when another project has a row with the same sha256: the content
 *   store keeps one blob per digest.
 * - `chargedBytes`, what the `storage_max_bytes` quota counts, is everything the project holds
 *   except the layers of public images (building on a public base costs nothing).
 * - Layers no live image mounts (those of deleted images, replaced by flattening, held by a
 *   lease) are nobody's: the totals show them as `unreferenced`, the GC's to take.
 *
 * One pass over the live images' mount chains, streamed, each walked only down to the first
 * layer its project was already seen to mount (bench/usage/usage-100k.ts: 100,000 images).
 */
import type { LiveChain, UsageRepo } from "../metadata/repos/usage-repo.js";

export interface ProjectUsage {
  projectId: string;
  /** Live images. */
  images: number;
  /** Distinct layers its live images mount. */
  layers: number;
  files: number;
  /** Held by this project alone: what deleting all its images and files would free. */
  exclusiveBytes: number;
  /** Held by other projects too (public images' layers included). */
  sharedBytes: number;
  /** What its quota counts: exclusive + shared, less the layers of public images. */
  chargedBytes: number;
  layerBytes: { exclusive: number; shared: number };
  fileBytes: { exclusive: number; shared: number };
}

export interface UsageTotals {
  images: number;
  /** Every layer row, live or not, and their bytes (what the layer store holds). */
  layers: number;
  layerBytes: number;
  /** Layers no live image mounts: garbage for the GC, or held by a lease for now. */
  unreferencedLayers: number;
  unreferencedLayerBytes: number;
  files: number;
  /** Distinct blobs the file rows name (the content store keeps one per sha256). */
  blobs: number;
  blobBytes: number;
}

export interface UsageReport {
  /** Epoch ms when the pass started, and how long it took. */
  computedAt: number;
  durationMs: number;
  projects: ProjectUsage[];
  totals: UsageTotals;
}

/** Rows per query: each page is a few ms, and requests waiting for the database go in between. */
const PAGE = 500;
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/** Who mounts a layer: one project, or several (a Set, only for the few shared layers). */
type Owners = string | Set<string>;

/** The whole usage in one pass over live images (see the module comment for the rules). */
export async function computeUsage(
  repo: UsageRepo,
  publicProjectId: string | undefined,
  now: () => number = Date.now,
): Promise<UsageReport> {
  const started = now();
  const sizes = new Map<string, number>();
  for (let after = 0; ; ) {
    const page = await repo.layerPage(after, PAGE);
    for (const l of page) sizes.set(l.id, l.size);
    if (page.length < PAGE) break;
    after = (page[page.length - 1] as { rowid: number }).rowid;
    await yieldToLoop();
  }
  const owners = new Map<string, Owners>();
  const perProject = new Map<string, ProjectUsage>();
  const entry = (projectId: string): ProjectUsage => {
    let u = perProject.get(projectId);
    if (!u) {
      u = {
        projectId,
        images: 0,
        layers: 0,
        files: 0,
        exclusiveBytes: 0,
        sharedBytes: 0,
        chargedBytes: 0,
        layerBytes: { exclusive: 0, shared: 0 },
        fileBytes: { exclusive: 0, shared: 0 },
      };
      perProject.set(projectId, u);
    }
    return u;
  };
  let images = 0;
  for (let after = 0; ; ) {
    const page = await repo.liveChainPage(after, PAGE);
    for (const row of page) walk(row);
    if (page.length < PAGE) break;
    after = (page[page.length - 1] as { rowid: number }).rowid;
    await yieldToLoop();
  }
  function walk(row: LiveChain): void {
    images++;
    entry(row.projectId).images++;
    // Top-down until a layer this project already mounts: a layer is a diff against the layers
    // below it, so it is always mounted over the same ones (flattening replaces a whole suffix),
    // and the rest of the chain was recorded with it. Most chains stop at their first layer.
    const text = row.mountChain;
    const project = row.projectId;
    // The ids between quotes, read in place: ids are [a-z0-9] only (no escapes), and a walk that
    // stops early never reads the rest of a long chain.
    for (let i = text.indexOf('"'); i !== -1; ) {
      const end = text.indexOf('"', i + 1);
      if (end === -1) break;
      const layer = text.slice(i + 1, end);
      i = text.indexOf('"', end + 1);
      const o = owners.get(layer);
      if (o === undefined) owners.set(layer, project);
      else if (typeof o === "string") {
        if (o === project) break;
        owners.set(layer, new Set([o, project]));
      } else {
        if (o.has(project)) break;
        o.add(project);
      }
    }
  }

  let liveLayerBytes = 0;
  for (const [layer, o] of owners) {
    const size = sizes.get(layer) ?? 0;
    liveLayerBytes += size;
    if (typeof o === "string") {
      const u = entry(o);
      u.layers++;
      if (o === publicProjectId) u.layerBytes.shared += size;
      else u.layerBytes.exclusive += size;
      u.chargedBytes += size;
      continue;
    }
    const isPublic = publicProjectId !== undefined && o.has(publicProjectId);
    for (const p of o) {
      const u = entry(p);
      u.layers++;
      u.layerBytes.shared += size;
      if (!isPublic || p === publicProjectId) u.chargedBytes += size;
    }
  }

  let files = 0;
  for (const f of await repo.fileUse()) {
    const u = entry(f.projectId);
    u.files = f.files;
    u.fileBytes = { exclusive: f.exclusiveBytes, shared: f.sharedBytes };
    u.chargedBytes += f.exclusiveBytes + f.sharedBytes;
    files += f.files;
  }
  for (const u of perProject.values()) {
    u.exclusiveBytes = u.layerBytes.exclusive + u.fileBytes.exclusive;
    u.sharedBytes = u.layerBytes.shared + u.fileBytes.shared;
  }

  let layerBytes = 0;
  for (const s of sizes.values()) layerBytes += s;
  const blobs = await repo.blobTotals();
  return {
    computedAt: started,
    durationMs: now() - started,
    projects: [...perProject.values()].sort((a, b) => b.chargedBytes - a.chargedBytes),
    totals: {
      images,
      layers: sizes.size,
      layerBytes,
      unreferencedLayers: sizes.size - countKnown(owners, sizes),
      unreferencedLayerBytes: layerBytes - liveLayerBytes,
      files,
      blobs: blobs.blobs,
      blobBytes: blobs.bytes,
    },
  };
}

/** Live layers that have a row (a chain naming a missing row would be a bug elsewhere; not ours to count). */
function countKnown(owners: ReadonlyMap<string, Owners>, sizes: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const layer of owners.keys()) if (sizes.has(layer)) n++;
  return n;
}
