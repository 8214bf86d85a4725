import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { ContentStore } from "../../content/content-store.js";
import { conflict, isKind } from "../../core/errors.js";
import type { MetadataStore } from "../../metadata/metadata-store.js";
import type { Logger } from "../../observability/logger.js";
import { isAlive, type LayerStore } from "../layer-store.js";
import { type Lease, LeaseManager } from "../leases.js";
import { crashPoint } from "./crash-point.js";
import { emptyReport, type GcReport } from "./gc-report.js";
import { mark } from "./mark.js";
import { sweepBlobs } from "./sweep-blobs.js";
import { sweepRunDirs, sweepStaging } from "./sweep-dirs.js";
import { sweepTombstones } from "./sweep-images.js";
import { sweepLayerDirs, sweepLayerRows } from "./sweep-layers.js";

export interface GcDeps {
  store: MetadataStore;
  layers: LayerStore;
  content: ContentStore;
  /** `<data>/runs`: run dirs of operations. */
  runsDir: string;
  /** Dirs and blobs without a row younger than this are left alone (CONTREE_GC_GRACE_SECONDS). */
  graceMs: number;
  logger?: Logger;
  /** Retention, run first in every pass that is not dry (images/retention.ts wired by main.ts). */
  beforeMark?: (now: number) => Promise<{ imagesExpired?: number; filesExpired?: number } | undefined>;
  /** Sees every pass's report (metrics). */
  onReport?: (r: GcReport) => void;
}

/** A later pass asked for early (disk pressure) waits at least this long after the last one. */
const EARLY_SPACING_MS = 10_000;

/**
 * Mark and sweep over the image tree (git's gc, containerd's GC): a layer lives while a live
 * image's mount chain, a lease or an unfinished operation's input uses it; everything else
 * goes. Order of a pass, each step safe to interrupt (rows before dirs, so a crash leaves at
 * worst a dir without a row, which the next pass removes as an orphan):
 *
 *   retention (`beforeMark`) → mark → expired leases → layer rows → layer dirs (and orphans) →
 *   tombstones without a live descendant → staging of dead processes, run dirs of finished
 *   operations → blobs no file row names.
 *
 * One pass at a time: in this process a second caller joins the running pass; across processes
 * (the server and `contree-server gc`) a `gc` lease is the lock, and a holder that died on this
 * host does not hold it.
 */
export class GarbageCollector {
  private current: { dryRun: boolean; pass: Promise<GcReport> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastEnd = 0;
  private readonly leases: LeaseManager;

  constructor(private readonly d: GcDeps) {
    this.leases = new LeaseManager(d.store);
  }

  /** Runs a pass, or joins the one running (a dry caller waits for a real pass, then looks). */
  async run(o: { dryRun?: boolean } = {}): Promise<GcReport> {
    const dryRun = o.dryRun ?? false;
    while (this.current) {
      const c = this.current;
      if (c.dryRun === dryRun) return c.pass;
      await c.pass.catch(() => undefined);
    }
    const pass = this.pass(dryRun).finally(() => {
      this.current = undefined;
      this.lastEnd = Date.now();
    });
    this.current = { dryRun, pass };
    return pass;
  }

  /** Background passes every `intervalSeconds` (0: none). */
  start(intervalSeconds: number): void {
    if (intervalSeconds <= 0 || this.closed) return;
    const tick = () => {
      this.timer = setTimeout(() => {
        this.run()
          .catch((err: unknown) => this.d.logger?.warn({ err }, "garbage collection failed"))
          .finally(() => {
            if (!this.closed) tick();
          });
      }, intervalSeconds * 1000);
      this.timer.unref();
    };
    tick();
  }

  /** Disk pressure: a pass soon (joins one running; spaced from the last one). */
  requestEarly(): void {
    if (this.closed || this.current) return;
    const wait = Math.max(0, this.lastEnd + EARLY_SPACING_MS - Date.now());
    const t = setTimeout(() => {
      if (this.closed) return;
      this.run().catch((err: unknown) => this.d.logger?.warn({ err }, "early garbage collection failed"));
    }, wait);
    t.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.current?.pass.catch(() => undefined);
    this.leases.close();
  }

  private async pass(dryRun: boolean): Promise<GcReport> {
    const t0 = Date.now();
    const report = emptyReport(dryRun, t0);
    const lock = await this.lock();
    try {
      if (!dryRun && this.d.beforeMark) {
        const r = await this.d.beforeMark(t0);
        report.imagesExpired = r?.imagesExpired ?? 0;
        report.filesExpired = r?.filesExpired ?? 0;
      }
      crashPoint("mark");
      const m0 = Date.now();
      const m = await mark(this.d.store, m0);
      const s0 = Date.now();
      report.markMs = s0 - m0;
      const { store } = this.d;
      const sw = { dryRun, graceMs: this.d.graceMs };
      report.leasesExpired = dryRun
        ? await store.gc.countExpiredLeases(s0)
        : await store.leases.deleteExpired(s0);
      crashPoint("leases");
      const rows = await sweepLayerRows(store, m, sw);
      crashPoint("layer-rows");
      const dirs = await sweepLayerDirs(store, this.d.layers, rows, sw);
      report.layersRemoved = rows.length + dirs.orphans;
      report.bytesFreed += dirs.bytes;
      crashPoint("layer-dirs");
      report.tombstonesRemoved = await sweepTombstones(store, m, dryRun);
      crashPoint("tombstones");
      const staging = await sweepStaging(store, this.d.layers, sw);
      report.stagingRemoved = staging.removed;
      report.bytesFreed += staging.bytes;
      const runs = await sweepRunDirs(store, this.d.runsDir, sw);
      report.runDirsRemoved = runs.removed;
      report.bytesFreed += runs.bytes;
      crashPoint("dirs");
      const blobs = await sweepBlobs(store, this.d.content, sw);
      report.blobsRemoved = blobs.removed;
      report.bytesFreed += blobs.bytes;
      report.sweepMs = Date.now() - s0;
    } finally {
      await lock.release().catch(() => undefined);
    }
    report.durationMs = Date.now() - t0;
    this.d.logger?.info({ gc: report }, dryRun ? "garbage collection (dry run)" : "garbage collection");
    try {
      this.d.onReport?.(report);
    } catch (err) {
      this.d.logger?.warn({ err }, "a garbage collection observer failed");
    }
    return report;
  }

  /** The cross-process lock: a `gc` lease no other live holder has. Waits for a running pass. */
  private async lock(): Promise<Lease> {
    let waitingLogged = false;
    for (;;) {
      try {
        return await this.leases.acquire({ kind: "gc" }, async (tx) => {
          for (const l of await tx.leases.live()) {
            if (l.kind !== "gc") continue;
            if (deadHere(l.holder)) {
              await tx.leases.release(l.id);
              continue;
            }
            throw conflict(`garbage collection is running in ${l.holder}`);
          }
        });
      } catch (err) {
        if (!isKind(err, "conflict") || this.closed) throw err;
        if (!waitingLogged)
          this.d.logger?.info({ reason: String(err) }, "waiting for another garbage collection");
        waitingLogged = true;
        await sleep(500);
      }
    }
  }
}

/** A holder `host:pid` on this host whose process is gone. */
function deadHere(holder: string): boolean {
  const i = holder.lastIndexOf(":");
  const pid = Number(holder.slice(i + 1));
  return holder.slice(0, i) === hostname() && Number.isInteger(pid) && pid !== process.pid && !isAlive(pid);
}
