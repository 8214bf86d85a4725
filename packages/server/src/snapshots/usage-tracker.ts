/**
 * The server's cached usage figure: a full pass (`computeUsage`) on a bound, after every GC
 * pass, and never per request; between passes each new image adds its bytes to its project's
 * figure, so the storage quota is checked on every spawn and import for the price of a map
 * lookup. Additions made after a pass started are kept over its result (a run committed during
 * the pass may be counted twice until the next one: an overestimate, never a way past a quota).
 */
import { failedPrecondition } from "../core/errors.js";
import type { UsageRepo } from "../metadata/repos/usage-repo.js";
import type { Logger } from "../observability/logger.js";
import { computeUsage, type UsageReport } from "./usage.js";

interface UsageTrackerOptions {
  usage: UsageRepo;
  /** The `public` project's id (its images' layers are nobody's own), resolved once. */
  publicProjectId: () => Promise<string | undefined>;
  logger: Logger;
  /** Least time between background passes; a slow pass stretches it (20× its duration). */
  refreshMs?: number;
  now?: () => number;
}

const DEFAULT_REFRESH_MS = 30_000;
/** A background pass may take at most 1/20 of the time (a 2 s pass: one every 40 s at most). */
const STRETCH = 20;

export class UsageTracker {
  private report: UsageReport | undefined;
  private byProject = new Map<string, number>();
  private running: Promise<UsageReport> | undefined;
  /** Bytes added per project since a pass started, with when (ms). */
  private added: Array<{ projectId: string; bytes: number; at: number }> = [];
  /** Additions still being looked up: a quota check waits for them (a result seen is counted). */
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: UsageTrackerOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Starts the background passes (the first one now). */
  start(): void {
    this.schedule(0);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** The newest full pass, if one finished. */
  latest(): UsageReport | undefined {
    return this.report;
  }

  /** A full pass now (one at a time: a caller during a pass gets that pass's result). */
  refresh(): Promise<UsageReport> {
    this.running ??= (async () => {
      try {
        const r = await computeUsage(this.o.usage, await this.o.publicProjectId(), this.now);
        this.report = r;
        this.byProject = new Map(r.projects.map((p) => [p.projectId, p.chargedBytes]));
        this.added = this.added.filter((a) => a.at >= r.computedAt);
        return r;
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** The bytes a project's quota counts now: the last pass plus what it added since. */
  async charged(projectId: string): Promise<number> {
    if (this.report === undefined) await this.refresh();
    if (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    let bytes = this.byProject.get(projectId) ?? 0;
    for (const a of this.added) if (a.projectId === projectId) bytes += a.bytes;
    return bytes;
  }

  /**
   * A new image was recorded by `operationId` (a run's result, an import): its project's figure
   * grows now (an operation's result that it did not create, as an unchanged run's, adds nothing). Called
   * as its completion is stored, so a quota check made after a client saw the result counts it.
   */
  imageAdded(imageId: string, operationId: string): Promise<void> {
    const at = this.now();
    const p = this.o.usage.addedBy(imageId, operationId).then((a) => {
      if (a && a.bytes > 0) this.added.push({ ...a, at });
    });
    const tracked = p.finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
    return tracked;
  }

  /**
   * Refuses new work that would add storage to a project at or over `limitBytes` (409: a
   * retry does not help until something is deleted). An unlimited project costs nothing.
   */
  async assertWithinQuota(project: { id: string; name: string }, limitBytes: number): Promise<void> {
    if (limitBytes >= Number.MAX_SAFE_INTEGER) return;
    const used = await this.charged(project.id);
    if (used < limitBytes) return;
    throw failedPrecondition(
      `storage quota exceeded: project ${JSON.stringify(project.name)} uses ${fmtBytes(used)} of its ` +
        `${fmtBytes(limitBytes)} (storage_max_bytes); new runs and imports are refused until it is under. ` +
        "Delete images and files it no longer needs (space is counted free once they are deleted), " +
        "run disposable instances (they keep nothing), or ask the operator to raise the limit",
    );
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(async () => {
      let next = this.o.refreshMs ?? DEFAULT_REFRESH_MS;
      try {
        const r = await this.refresh();
        next = Math.max(next, r.durationMs * STRETCH);
      } catch (err) {
        this.o.logger.warn({ err }, "storage usage pass failed");
      }
      this.schedule(next);
    }, ms);
    this.timer.unref();
  }
}

export function fmtBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]} (${n} bytes)`;
}
