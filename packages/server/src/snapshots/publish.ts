import { rename, rm } from "node:fs/promises";
import { internal } from "../core/errors.js";
import type { MetadataStore, Repos } from "../metadata/metadata-store.js";
import { runCommand } from "../sys/run-command.js";
import type { LayerStore } from "./layer-store.js";

/** The steps of a publish, in order; a fault hook sees each one as it is reached. */
export type PublishStep = "staged" | "filled" | "published" | "recorded";

/** Called at each step (tests inject failures and look at what a crash there would leave). */
export type PublishFaults = (step: PublishStep, layerId: string) => Promise<void> | void;

export type LayerSource =
  /** A directory already on the layer store's filesystem, taken as is (a run's upper). */
  | { rename: string }
  /** Fills a staging directory (a copy from another filesystem, a merged view). */
  | { fill: (staged: string) => Promise<void> };

/**
 * The one way a new layer enters the store, shared by commit and flatten:
 *
 *   stage → copy (or take by rename) → publish (rename to layers/<id>) → rows in one transaction
 *
 * and on failure the reverse: the staged or published dir is removed, so nothing is
 * half-visible. A crash leaves at most a staging dir or a layer dir without a row, both of
 * which GC (and start-up reclaim) remove after a grace; a row never names a missing dir.
 */
export async function publishLayer<T>(
  d: { store: MetadataStore; layers: LayerStore; faults?: PublishFaults | undefined },
  layerId: string,
  source: LayerSource,
  record: (tx: Repos) => Promise<T>,
): Promise<T> {
  const step = async (s: PublishStep) => {
    if (d.faults) await d.faults(s, layerId);
  };
  const target = d.layers.path(layerId);
  let published = false;
  if ("fill" in source) {
    const staged = await d.layers.stage();
    try {
      await step("staged");
      await source.fill(staged);
      await step("filled");
      await d.layers.publish(staged, layerId);
      published = true;
    } catch (err) {
      await d.layers.discard(staged);
      throw err;
    }
  } else {
    await step("staged");
    await step("filled");
    await rename(source.rename, target);
    published = true;
  }
  try {
    await step("published");
    const out = await d.store.transaction(record);
    await step("recorded");
    return out;
  } catch (err) {
    // "recorded" failing stands for a crash after the commit: the rows stay, so does the dir.
    // A database that cannot even answer keeps the dir: an orphan GC removes later beats a row
    // naming a missing dir.
    if (published && !(await recorded(d.store, layerId).catch(() => true)))
      await rm(target, { recursive: true, force: true });
    throw err;
  }
}

async function recorded(store: MetadataStore, layerId: string): Promise<boolean> {
  return (await store.images.layer(layerId)) !== undefined;
}

/**
 * GNU cp keeps what a layer needs: owners, modes, times, xattrs (capabilities, overlay's opaque
 * markers), whiteouts (0/0 devices), device stand-ins, fifos and hardlinks.
 */
export async function copyTree(from: string, to: string, what: string): Promise<void> {
  const r = await runCommand("cp", ["-a", "--no-target-directory", `${from}/.`, to]).catch((err: unknown) => {
    throw internal(`copying ${what} failed`, { cause: err });
  });
  if (r.code !== 0) {
    const full = /No space left on device|Disk quota exceeded/.test(r.stderr);
    const cause = Object.assign(
      new Error(`cp → ${r.signal ?? r.code}: ${r.stderr.trim().slice(0, 2000)}`),
      full ? { code: "ENOSPC" } : {},
    );
    throw internal(`copying ${what} failed`, { cause });
  }
}
