import { mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ContentStore } from "../../content/content-store.js";
import { failedPrecondition, internal, isStorageFull } from "../../core/errors.js";
import { MergedView } from "../../layers/merged-view.js";
import type { MetadataStore } from "../../metadata/metadata-store.js";
import type { ImageRecord } from "../../metadata/repos/image-repo.js";
import type { Logger } from "../../observability/logger.js";
import { Compactor, MAX_MOUNT_CHAIN } from "../compactor.js";
import type { LayerStore } from "../layer-store.js";
import type { Lease, LeaseManager } from "../leases.js";
import type { PublishFaults } from "../publish.js";
import type {
  ActiveSnapshot,
  Collector,
  CommitRequest,
  CommitResult,
  ImageView,
  PrepareOptions,
  Snapshotter,
  SnapshotUsage,
} from "../snapshotter.js";
import { type SearchHit, searchTree } from "./byte-search.js";
import { type DiffStats, diffStats } from "./diff-stats.js";
import { commitRun } from "./run-commit.js";
import { type MountState, mountRunRootfs, unmountNow } from "./run-rootfs.js";
import type { RunScratch, ScratchBackend } from "./scratch/scratch.js";

export interface OverlaySnapshotterOptions<GcReport> {
  store: MetadataStore;
  layers: LayerStore;
  content: ContentStore;
  leases: LeaseManager;
  /** Where a run's upper and work live so that its cap holds while it writes. */
  scratch: ScratchBackend;
  /** Per-run dirs (`<key>/{rootfs,bundle,…}`), on the data filesystem. */
  runsDir: string;
  logger: Logger;
  /** Chains longer than this are flattened after a commit (default MAX_MOUNT_CHAIN). */
  maxChain?: number;
  /** Mark and sweep (snapshots/gc/), when composition gives one. */
  collector?: Collector<GcReport>;
  /** Tests: called at each step of a layer's publish (see publish.ts). */
  faults?: PublishFaults;
}

/** A prepared run: what it holds, each part undone by remove(). */
interface ActiveRun {
  dir: string;
  rootfs: string;
  mount: MountState;
  scratch: RunScratch | null;
  /** Taken beside the mount (off the critical path); awaited before prepare returns. */
  lease: Promise<Lease> | null;
  usage: (DiffStats & { reachedCap: boolean }) | null;
}

/**
 * The overlay backend: layers are overlayfs upper-format dirs (LayerStore), a run's rootfs is an
 * overlay of its image's chain over a scratch (scratch/ picks how its cap is enforced), a commit
 * is a rename of the upper (or a copy from a scratch on another filesystem), a view reads the
 * chain without mounting (MergedView).
 */
export class OverlaySnapshotter<GcReport = unknown> implements Snapshotter<GcReport> {
  private readonly active = new Map<string, ActiveRun>();
  private readonly compactor: Compactor;
  private emptyRoot: Promise<string> | undefined;

  constructor(private readonly o: OverlaySnapshotterOptions<GcReport>) {
    this.compactor = new Compactor(
      {
        store: o.store,
        layers: o.layers,
        leases: o.leases,
        scratchDir: o.runsDir,
        logger: o.logger,
        faults: o.faults,
      },
      o.maxChain ?? MAX_MOUNT_CHAIN,
    );
  }

  /** Whether a run's writes past its cap fail while it writes (else they are checked after it). */
  get scratchEnforced(): boolean {
    return this.o.scratch.enforced;
  }

  async prepare(key: string, image: ImageRecord, opts: PrepareOptions): Promise<ActiveSnapshot> {
    if (this.active.has(key)) throw internal(`snapshot ${key} is already prepared`);
    const dir = join(this.o.runsDir, key);
    const run: ActiveRun = {
      dir,
      rootfs: join(dir, "rootfs"),
      mount: { mounted: null },
      scratch: null,
      lease: null,
      usage: null,
    };
    this.active.set(key, run);
    // One small insert, concurrent with the scratch and the mount: a run's latency does not wait
    // for it unless the database is slower than the mount.
    run.lease = this.o.leases.acquire({
      kind: "run",
      projectId: opts.projectId,
      images: [image.id],
      layers: image.mountChain,
    });
    run.lease.catch(() => undefined);
    mkdirSync(dir, { recursive: true });
    run.scratch = await this.o.scratch.acquire(dir, opts.capBytes);
    await mountRunRootfs(this.o, {
      lowers: this.o.layers.paths(image.mountChain),
      upper: run.scratch.upper,
      work: run.scratch.work,
      rootfs: run.rootfs,
      opts,
      state: run.mount,
    });
    await run.lease;
    return { rootfs: run.rootfs, dir };
  }

  async unmount(key: string): Promise<void> {
    await unmountNow(this.run(key).mount);
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const run = this.run(key);
    if (run.usage === null) {
      const scratch = this.scratchOf(run);
      const [diff, reachedCap] = await Promise.all([diffStats(scratch.upper), scratch.reachedCap()]);
      run.usage = { ...diff, reachedCap };
    }
    return { ...run.usage };
  }

  async search<N extends { bytes: Buffer }>(
    key: string,
    needles: readonly N[],
  ): Promise<SearchHit<N> | null> {
    const run = this.run(key);
    if (run.mount.mounted !== null) throw internal("search of a mounted snapshot");
    return searchTree(this.scratchOf(run).upper, needles);
  }

  async commit(key: string, parent: ImageRecord, c: CommitRequest): Promise<CommitResult> {
    const run = this.run(key);
    if (run.mount.mounted !== null) throw internal("commit of a mounted snapshot");
    const scratch = this.scratchOf(run);
    const diff = run.usage ?? (await this.usage(key));
    let result: CommitResult;
    try {
      result = await commitRun(this.o, parent, c, { upper: scratch.upper, diff, via: scratch.commit });
    } catch (err) {
      // What the run wrote is no longer needed: on a full disk its space goes first.
      if (isStorageFull(err)) await this.releaseScratch(run);
      throw err;
    }
    // Compaction looks at the new chain (and makes us wait only far past the threshold).
    if (result.kind === "committed") await this.compactor.consider(result.image);
    return result;
  }

  async remove(key: string): Promise<void> {
    const run = this.active.get(key);
    if (!run) return;
    const errors: unknown[] = [];
    const step = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    };
    await step(() => unmountNow(run.mount));
    // A mount that would not go keeps the scratch and the dir (removing through it would write
    // whiteouts into the scratch); the next remove (or start-up reclaim) tries again.
    if (run.mount.mounted === null) {
      await step(() => this.releaseScratch(run));
      await step(() => rm(run.dir, { recursive: true, force: true }));
      // A lease that was never taken (its insert failed) has nothing to release.
      await step(async () => (await run.lease?.catch(() => null))?.release());
      if (errors.length === 0) this.active.delete(key);
    }
    if (errors.length > 0) throw errors[0];
  }

  async view(image: ImageRecord): Promise<ImageView> {
    const chain = [...image.mountChain];
    // Reads are never refused for a full disk: without room for the lease row the view goes
    // unleased (the image is live, so GC keeps its chain; only a flatten racing the read could
    // take the old one from under it).
    const lease = await this.o.leases
      .acquire({ kind: "inspect", projectId: image.projectId, images: [image.id], layers: chain })
      .catch((err: unknown) => {
        if (!isStorageFull(err)) throw err;
        this.o.logger.warn({ err, imageId: image.id }, "inspect view without a lease: the disk is full");
        return { release: async () => {} };
      });
    const layers = this.o.layers.paths(chain);
    const empty = layers.length === 0 ? await this.empty() : null;
    return {
      id: image.id,
      key: `${image.id}\0${chain.join("\0")}`,
      reader: () => new MergedView(empty === null ? layers : [empty]),
      release: () => lease.release(),
    };
  }

  flatten(image: ImageRecord): Promise<string | null> {
    return this.compactor.flatten(image);
  }

  /** Waits for queued flattens (tests). */
  idle(): Promise<void> {
    return this.compactor.idle();
  }

  gc(o: { dryRun?: boolean } = {}): Promise<GcReport> {
    if (!this.o.collector) throw failedPrecondition("no garbage collector is configured");
    return this.o.collector.collect({ dryRun: o.dryRun ?? false });
  }

  async close(): Promise<void> {
    await this.compactor.close();
    await this.o.scratch.close();
    const root = this.emptyRoot;
    this.emptyRoot = undefined;
    if (root) await rm(await root, { recursive: true, force: true });
  }

  private run(key: string): ActiveRun {
    const run = this.active.get(key);
    if (!run) throw internal(`no prepared snapshot ${key}`);
    return run;
  }

  private scratchOf(run: ActiveRun): RunScratch {
    if (run.scratch === null) throw internal("snapshot without scratch");
    return run.scratch;
  }

  private async releaseScratch(run: ActiveRun): Promise<void> {
    const s = run.scratch;
    if (s === null) return;
    await s.release();
    run.scratch = null;
  }

  /** An image without layers is an empty directory. */
  private empty(): Promise<string> {
    this.emptyRoot ??= mkdtemp(join(tmpdir(), "contree-empty-image-"));
    return this.emptyRoot;
  }
}
