/**
 * What the data dir holds and what garbage collection gives back. Fed from outside like the
 * server metrics: the usage tracker's last pass is read at scrape time (never a pass per
 * scrape), and the GC hands each pass's report to `gcObserved` (its `onReport` observer, wired
 * in main.ts). Totals only: projects never become labels.
 */
import { statSync } from "node:fs";
import type { MetricsRegistry } from "./metrics.js";

/** The totals of a usage pass (snapshots/usage.ts `UsageReport`, structurally). */
interface ObservedUsage {
  computedAt: number;
  durationMs: number;
  totals: {
    images: number;
    layers: number;
    layerBytes: number;
    unreferencedLayers: number;
    unreferencedLayerBytes: number;
    files: number;
    blobs: number;
    blobBytes: number;
  };
}

/** One GC pass (snapshots/gc/gc-report.ts `GcReport`, structurally). */
export interface ObservedGcReport {
  dryRun: boolean;
  startedAt: number;
  durationMs: number;
  imagesExpired: number;
  filesExpired: number;
  tombstonesRemoved: number;
  layersRemoved: number;
  bytesFreed: number;
  blobsRemoved: number;
  stagingRemoved: number;
  runDirsRemoved: number;
  leasesExpired: number;
}

export interface StorageMetricsSources {
  /** The newest usage pass, if any finished. */
  usage(): ObservedUsage | undefined;
  /** The metadata database's files (the database and its WAL), sized at scrape time. */
  databaseFiles: readonly string[];
  now?(): number;
}

/** Up to an hour: a sweep of 100,000 images is seconds, a slow disk may make it minutes. */
const GC_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** Report fields counted per pass as `contree_gc_removed_total{what}`. */
const REMOVED = {
  images_expired: "imagesExpired",
  files_expired: "filesExpired",
  tombstones: "tombstonesRemoved",
  layers: "layersRemoved",
  blobs: "blobsRemoved",
  staging: "stagingRemoved",
  run_dirs: "runDirsRemoved",
  leases: "leasesExpired",
} as const satisfies Record<string, keyof ObservedGcReport>;

export class StorageMetrics {
  private readonly bytes;
  private readonly images;
  private readonly layers;
  private readonly unreferenced;
  private readonly unreferencedBytes;
  private readonly files;
  private readonly blobs;
  private readonly usageAge;
  private readonly usageDuration;
  private readonly gcRuns;
  private readonly gcFreed;
  private readonly gcRemoved;
  private readonly gcDuration;
  private readonly gcLast;
  private readonly now: () => number;

  constructor(
    reg: MetricsRegistry,
    private readonly sources: StorageMetricsSources,
  ) {
    this.now = sources.now ?? Date.now;
    this.bytes = reg.gauge(
      "contree_storage_bytes",
      "Bytes the data dir holds, by kind: layers (every layer row), blobs (distinct uploaded contents), database",
    );
    this.images = reg.gauge("contree_storage_images", "Live images (not deleted), all projects");
    this.layers = reg.gauge("contree_storage_layers", "Layer rows, live or awaiting garbage collection");
    this.unreferenced = reg.gauge(
      "contree_storage_unreferenced_layers",
      "Layers no live image mounts (garbage, or held by a lease for in-flight work)",
    );
    this.unreferencedBytes = reg.gauge(
      "contree_storage_unreferenced_layer_bytes",
      "Bytes of the layers no live image mounts",
    );
    this.files = reg.gauge("contree_storage_files", "Uploaded file rows, all projects");
    this.blobs = reg.gauge("contree_storage_blobs", "Distinct uploaded contents the file rows name");
    this.usageAge = reg.gauge(
      "contree_storage_usage_age_seconds",
      "Age of the usage figures above (the last usage pass); -1 before the first one",
    );
    this.usageDuration = reg.gauge("contree_storage_usage_pass_seconds", "How long the last usage pass took");
    this.gcRuns = reg.counter("contree_gc_runs_total", "Garbage collection passes, by mode (sweep, dry_run)");
    this.gcFreed = reg.counter(
      "contree_gc_reclaimed_bytes_total",
      "Bytes garbage collection freed (dry runs count nothing)",
    );
    this.gcRemoved = reg.counter(
      "contree_gc_removed_total",
      "What garbage collection removed or expired, by what (dry runs count nothing)",
    );
    this.gcDuration = reg.histogram(
      "contree_gc_duration_seconds",
      "Duration of garbage collection passes (mark and sweep), by mode",
      GC_BUCKETS,
    );
    this.gcLast = reg.gauge(
      "contree_gc_last_run_timestamp_seconds",
      "When the last garbage collection pass started (Unix seconds), by mode; 0 before the first",
    );
    for (const mode of ["sweep", "dry_run"]) {
      this.gcRuns.inc({ mode }, 0);
      this.gcLast.set({ mode }, 0);
    }
    this.gcFreed.inc({}, 0);
    for (const what of Object.keys(REMOVED)) this.gcRemoved.inc({ what }, 0);
    reg.collect(() => this.collect());
  }

  /** The GC's `onReport` observer: one call per pass. Never throws (it runs inside the GC). */
  gcObserved(report: ObservedGcReport): void {
    try {
      const mode = report.dryRun ? "dry_run" : "sweep";
      this.gcRuns.inc({ mode });
      this.gcDuration.observe({ mode }, Math.max(0, report.durationMs) / 1000);
      this.gcLast.set({ mode }, Math.floor(report.startedAt / 1000));
      if (report.dryRun) return;
      this.gcFreed.inc({}, count(report.bytesFreed));
      for (const [what, field] of Object.entries(REMOVED)) this.gcRemoved.inc({ what }, count(report[field]));
    } catch {
      // a malformed report costs the metric, never the pass
    }
  }

  private collect(): void {
    let db = 0;
    for (const f of this.sources.databaseFiles) {
      try {
        db += statSync(f).size;
      } catch {
        // no WAL right now
      }
    }
    this.bytes.set({ kind: "database" }, db);
    const u = this.sources.usage();
    if (!u) {
      this.usageAge.set({}, -1);
      return;
    }
    const t = u.totals;
    this.bytes.set({ kind: "layers" }, t.layerBytes);
    this.bytes.set({ kind: "blobs" }, t.blobBytes);
    this.images.set({}, t.images);
    this.layers.set({}, t.layers);
    this.unreferenced.set({}, t.unreferencedLayers);
    this.unreferencedBytes.set({}, t.unreferencedLayerBytes);
    this.files.set({}, t.files);
    this.blobs.set({}, t.blobs);
    this.usageAge.set({}, Math.max(0, this.now() - u.computedAt) / 1000);
    this.usageDuration.set({}, u.durationMs / 1000);
  }
}

function count(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}
