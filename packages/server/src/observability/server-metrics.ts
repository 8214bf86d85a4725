/**
 * What an operator of this server watches: operations by kind and outcome, the queue, running
 * sandboxes, run stages, bytes imported and committed, free space. Fed from the outside only
 * (the operations event log, the queue handing work to a handler, scrape-time reads), so the
 * subsystems measured know nothing of metrics. Every label has a closed set of values: ids,
 * projects and commands never become labels.
 */
import type { MetricsRegistry } from "./metrics.js";

/** One stored event of an operation's log (the shape the event log hands its observers). */
interface ObservedEvent {
  spid: number;
  type: string;
  data: Readonly<Record<string, unknown>>;
}

/** Scrape-time readers of state owned by other subsystems (wired in main.ts). */
export interface ServerMetricsSources {
  /** Active operations per kind and status, with the oldest creation time (ms). */
  activeOperations(): Promise<
    ReadonlyArray<{ kind: string; status: string; count: number; oldestCreatedAt: number }>
  >;
  /** Kind of an operation the metrics never saw start (cancelled while pending, recovered). */
  kindOf(operationId: string): Promise<string | undefined>;
  /** The data filesystem as the disk guard sees it. */
  storage(): { freeBytes: number; refusingWrites: boolean };
  now?(): number;
}

const KINDS = new Set(["instance", "image_import"]);
const ACTIVE = ["PENDING", "ASSIGNED", "EXECUTING"] as const;
const FINAL = new Set(["SUCCESS", "FAILED", "CANCELLED"]);
/** Stage names come from code, not requests; the cap only guards against a future mistake. */
const MAX_STAGES = 24;
const STAGE_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/** 1 ms .. 1 h: a run stage is milliseconds, a whole run or a queue wait up to the run timeout. */
const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

const kindLabel = (k: string | undefined): string => (k !== undefined && KINDS.has(k) ? k : "unknown");

export class ServerMetrics {
  private readonly finished;
  private readonly duration;
  private readonly queueWait;
  private readonly active;
  private readonly oldestPending;
  private readonly stageDuration;
  private readonly sandboxes;
  private readonly processes;
  private readonly exits;
  private readonly importLayers;
  private readonly importBytes;
  private readonly committedBytes;
  private readonly sizeCap;
  private readonly freeBytes;
  private readonly refusing;
  /** Kinds of operations seen starting, until their completion (the completion has no kind). */
  private readonly kinds = new Map<string, string>();
  /** Instances whose main process has spawned and not yet exited. */
  private readonly running = new Set<string>();
  private readonly stages = new Set<string>();
  private readonly now: () => number;

  constructor(
    reg: MetricsRegistry,
    private readonly sources: ServerMetricsSources,
  ) {
    this.now = sources.now ?? Date.now;
    this.finished = reg.counter(
      "contree_operations_finished_total",
      "Operations that reached a final status, by kind and status",
    );
    this.duration = reg.histogram(
      "contree_operation_duration_seconds",
      "Time from an operation's start (its creation if it never started) to its final status, by kind and status",
      SECONDS_BUCKETS,
    );
    this.queueWait = reg.histogram(
      "contree_operation_queue_wait_seconds",
      "Time from an operation's creation to the start of its execution, by kind",
      SECONDS_BUCKETS,
    );
    this.active = reg.gauge("contree_operations", "Operations not yet finished, by kind and status");
    this.oldestPending = reg.gauge(
      "contree_operation_oldest_pending_age_seconds",
      "Age of the oldest PENDING operation, by kind (0 when none waits)",
    );
    this.stageDuration = reg.histogram(
      "contree_run_stage_duration_seconds",
      "Duration of each stage of an instance run, by stage",
      SECONDS_BUCKETS,
    );
    this.sandboxes = reg.gauge(
      "contree_sandboxes_running",
      "Instances whose main process is running (from its spawn to its exit or the operation's end)",
    );
    this.processes = reg.counter(
      "contree_sandbox_processes_started_total",
      "Processes started in sandboxes: the main process of a run or one started by exec",
    );
    this.exits = reg.counter(
      "contree_sandbox_process_exits_total",
      "Processes in sandboxes that ended, by process (main, exec) and how (exited, signaled, timed_out)",
    );
    this.importLayers = reg.counter(
      "contree_image_import_layers_total",
      "Layers of imported images, fetched (reused=false) or already stored (reused=true)",
    );
    this.importBytes = reg.counter(
      "contree_image_import_fetched_bytes_total",
      "Bytes of layer blobs fetched by imports (as stored in the registry, usually compressed)",
    );
    this.committedBytes = reg.counter(
      "contree_instance_committed_bytes_total",
      "Bytes of run changes kept as new images (apparent size of the diffs)",
    );
    this.sizeCap = reg.counter(
      "contree_instance_size_cap_reached_total",
      "Runs that filled their max_layer_bytes scratch or wrote past it",
    );
    this.freeBytes = reg.gauge(
      "contree_storage_free_bytes",
      "Free bytes on the data filesystem, not counting the storage reserve",
    );
    this.refusing = reg.gauge(
      "contree_storage_refusing_writes",
      "1 while the data filesystem is below its free space or inode minimum and new writes get 507",
    );
    this.sandboxes.set({}, () => this.running.size);
    reg.collect(() => this.collect());
  }

  /** The queue handed an operation to its handler (at the EXECUTING transition). */
  operationStarted(op: { id: string; kind: string; createdAt: number; startedAt: number | null }): void {
    const kind = kindLabel(op.kind);
    this.kinds.set(op.id, kind);
    const started = op.startedAt ?? this.now();
    this.queueWait.observe({ kind }, Math.max(0, started - op.createdAt) / 1000);
  }

  /** One stored event of an operation's log; never throws (it runs inside the log's append). */
  operationEvent(operationId: string, e: ObservedEvent): void {
    try {
      this.onEvent(operationId, e);
    } catch {
      // A malformed event must not cost the append its subscribers; the metric just misses it.
    }
  }

  /** How long one stage of a run took (the instance handler's `observeStage`). */
  observeRunStage(stage: string, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    let label = STAGE_NAME.test(stage) ? stage : "other";
    if (!this.stages.has(label)) {
      if (this.stages.size >= MAX_STAGES) label = "other";
      else this.stages.add(label);
    }
    this.stageDuration.observe({ stage: label }, seconds);
  }

  private onEvent(operationId: string, e: ObservedEvent): void {
    const d = e.data;
    switch (e.type) {
      case "spawn":
        this.processes.inc({ process: e.spid === 1 ? "main" : "exec" });
        if (e.spid === 1) this.running.add(operationId);
        return;
      case "exit": {
        const how = d["timed_out"] === true ? "timed_out" : num(d["signal"]) > 0 ? "signaled" : "exited";
        this.exits.inc({ process: e.spid === 1 ? "main" : "exec", how });
        if (e.spid === 1) this.running.delete(operationId);
        return;
      }
      case "progress":
        if (d["stage"] !== "layer") return;
        this.importLayers.inc({ reused: d["reused"] === true ? "true" : "false" });
        if (d["reused"] !== true) this.importBytes.inc({}, num(d["size"]));
        return;
      case "size_cap":
        this.sizeCap.inc();
        return;
      case "completion":
        this.running.delete(operationId);
        void this.completed(operationId, d).catch(() => undefined);
        return;
    }
  }

  private async completed(operationId: string, d: Readonly<Record<string, unknown>>): Promise<void> {
    let kind = this.kinds.get(operationId);
    this.kinds.delete(operationId);
    kind ??= kindLabel(await this.sources.kindOf(operationId));
    const status = typeof d["status"] === "string" && FINAL.has(d["status"]) ? d["status"] : "unknown";
    this.finished.inc({ kind, status });
    this.duration.observe({ kind, status }, num(d["duration_ms"]) / 1000);
    if (kind === "instance" && status === "SUCCESS" && typeof d["result_image_uuid"] === "string")
      this.committedBytes.inc({}, num(d["image_size_bytes"]));
  }

  private async collect(): Promise<void> {
    const rows = await this.sources.activeOperations();
    const storage = this.sources.storage();
    const now = this.now();
    // Set synchronously after the read: a concurrent scrape never renders a half-filled gauge.
    this.active.clear();
    this.oldestPending.clear();
    for (const kind of KINDS) {
      for (const status of ACTIVE) this.active.set({ kind, status }, 0);
      this.oldestPending.set({ kind }, 0);
    }
    for (const r of rows) {
      const kind = kindLabel(r.kind);
      this.active.set({ kind, status: r.status }, r.count);
      if (r.status === "PENDING" && r.count > 0)
        this.oldestPending.set({ kind }, Math.max(0, now - r.oldestCreatedAt) / 1000);
    }
    this.freeBytes.set({}, Number.isFinite(storage.freeBytes) ? storage.freeBytes : 0);
    this.refusing.set({}, storage.refusingWrites ? 1 : 0);
  }
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}
