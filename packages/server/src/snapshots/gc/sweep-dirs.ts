import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { MetadataStore } from "../../metadata/metadata-store.js";
import { isAlive, type LayerStore } from "../layer-store.js";
import { crashPoint } from "./crash-point.js";
import { dirBytes } from "./dir-bytes.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A layer dir this collector took out of the store (LayerStore.detach) and then died holding. */
const DETACHED = /^\d+\.gc-([a-z0-9]+)-[0-9a-f]{8}$/;

export interface DirSweep {
  removed: number;
  bytes: number;
}

/**
 * Staging dirs of processes that are gone (a crashed commit, import or flatten), past the grace.
 * A layer dir a collector detached and died holding goes back if a row names it again.
 */
export async function sweepStaging(
  store: MetadataStore,
  layers: LayerStore,
  o: { dryRun: boolean; graceMs: number },
): Promise<DirSweep> {
  const now = Date.now();
  const out: DirSweep = { removed: 0, bytes: 0 };
  for (const e of await layers.listStaging()) {
    if (e.pid !== undefined && (e.pid === process.pid || isAlive(e.pid))) continue;
    if (now - e.mtimeMs < o.graceMs) continue;
    const layerId = DETACHED.exec(e.name)?.[1];
    if (layerId !== undefined && (await store.gc.existingLayers([layerId])).has(layerId)) {
      if (!o.dryRun) await layers.reattach(e.path, layerId);
      continue;
    }
    out.bytes += await dirBytes(e.path);
    out.removed++;
    if (!o.dryRun) {
      await rm(e.path, { recursive: true, force: true });
      crashPoint("staging");
    }
  }
  return out;
}

/**
 * Run dirs (`runs/<operation id>`) of operations that are terminal or unknown, past the grace,
 * with nothing mounted under them in this mount namespace. The server clears them at start-up;
 * this finds those a teardown failed to remove while it runs.
 */
export async function sweepRunDirs(
  store: MetadataStore,
  runsDir: string,
  o: { dryRun: boolean; graceMs: number },
): Promise<DirSweep> {
  const out: DirSweep = { removed: 0, bytes: 0 };
  const names = await readdir(runsDir).catch(() => [] as string[]);
  const candidates = names.filter((n) => UUID.test(n));
  if (candidates.length === 0) return out;
  const active = await store.gc.activeOperationIds();
  const mounts = await mountPoints();
  const now = Date.now();
  for (const name of candidates) {
    if (active.has(name)) continue;
    const dir = join(runsDir, name);
    if (mounts.some((m) => m === dir || m.startsWith(`${dir}/`))) continue;
    const st = await stat(dir).catch(() => undefined);
    if (!st || now - st.mtimeMs < o.graceMs) continue;
    out.bytes += await dirBytes(dir);
    out.removed++;
    if (!o.dryRun) await rm(dir, { recursive: true, force: true });
  }
  return out;
}

async function mountPoints(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  return text
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
}
