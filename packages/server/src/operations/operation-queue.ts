import { availableParallelism, totalmem } from "node:os";
import type { ProjectLimits } from "../config/config.js";
import { AppError, failedPrecondition, isStorageFull, toAppError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import {
  ACTIVE_STATUSES,
  type OperationKind,
  type OperationRecord,
  type OperationStatus,
} from "../metadata/repos/operation-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { Logger } from "../observability/logger.js";
import type { EventLog } from "./event-log.js";
import type { HandlerOutcome, OperationHandler } from "./operation-handler.js";
import { findOperation } from "./operation-lookup.js";

export interface OperationQueueOptions {
  store: MetadataStore;
  events: EventLog;
  logger: Logger;
  handlers: readonly OperationHandler[];
  /** Limits in force for a project (server defaults overridden by the project's own). */
  limitsOf(projectId: string): Promise<ProjectLimits>;
  /** Node-wide caps; default from cores and memory. */
  nodeSlots?: Partial<Record<OperationKind, number>>;
  /** Frees room on a full data filesystem (the storage reserve) so a result can still be stored. */
  relieveStorage?: () => Promise<void>;
}

/** Waits before storing a result again when the data filesystem was full (after the reserve is given back). */
const FULL_RETRY_MS = [0, 250, 1000, 5000];

function defaultNodeSlots(): Record<OperationKind, number> {
  const cores = availableParallelism();
  const memSlots = Math.floor(totalmem() / (256 * 1024 * 1024));
  return {
    instance: Math.max(2, Math.min(cores * 8, memSlots)),
    image_import: Math.max(2, Math.min(cores * 2, 8)),
  };
}

interface Running {
  op: OperationRecord;
  abort: AbortController;
  done: Promise<void>;
}

/**
 * The durable queue: rows in the metadata store move PENDING → ASSIGNED → EXECUTING → terminal.
 * The scheduler picks pending work fairly between projects (round robin, oldest first within a
 * project) under per-project and per-node limits. Cancellation works at every stage.
 */
export class OperationQueue {
  private readonly handlers = new Map<OperationKind, OperationHandler>();
  private readonly running = new Map<string, Running>();
  private readonly nodeSlots: Record<OperationKind, number>;
  private pumping = false;
  private pumpAgain = false;
  private closed = false;
  private rotation = 0;

  constructor(private readonly o: OperationQueueOptions) {
    for (const h of o.handlers) this.handlers.set(h.kind, h);
    this.nodeSlots = { ...defaultNodeSlots(), ...o.nodeSlots };
  }

  /**
   * After a crash nothing is running: in-flight operations end FAILED (status and completion
   * event in one transaction, like every finish); pending ones are kept.
   */
  async recover(): Promise<number> {
    const stale = await this.o.store.operations.inStatus(["ASSIGNED", "EXECUTING"]);
    for (const op of stale) {
      await this.finish(
        op,
        { status: "FAILED", error: "the server restarted while the operation was running" },
        op.startedAt ?? op.createdAt,
      );
      this.o.events.forget(op.id);
    }
    return stale.length;
  }

  start(): void {
    this.kick();
  }

  async enqueue(
    project: Project,
    kind: OperationKind,
    metadata: Record<string, unknown>,
    imageId?: string | null,
    /** Given when something was stored under the id before the row (e.g. a large stdin). */
    id = newId(),
  ): Promise<OperationRecord> {
    const createdAt = Date.now();
    await this.o.store.operations.insert({
      id,
      projectId: project.id,
      kind,
      metadata,
      imageId: imageId ?? null,
      createdAt,
    });
    this.kick();
    const op = await this.o.store.operations.get(id);
    if (!op) throw new AppError("internal", "operation vanished after insert");
    return op;
  }

  /** Cancels an active operation of the project; 409 once terminal. */
  async cancel(projectId: string, id: string): Promise<OperationRecord> {
    const op = await findOperation(this.o.store.operations, projectId, id);
    if (!ACTIVE_STATUSES.includes(op.status)) throw failedPrecondition("operation is not cancellable");
    await this.o.store.operations.requestCancel(op.id);
    const live = this.running.get(op.id);
    if (live) {
      live.abort.abort("cancelled");
      await live.done;
    } else {
      await this.finish(op, { status: "CANCELLED", error: null }, op.createdAt);
      this.o.events.forget(op.id);
    }
    return (await this.o.store.operations.get(op.id)) ?? op;
  }

  /** Stops scheduling, aborts running work and waits for it (bounded). */
  async close(graceMs = 10_000): Promise<void> {
    this.closed = true;
    for (const r of this.running.values()) r.abort.abort("shutdown");
    const all = Promise.all([...this.running.values()].map((r) => r.done));
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
  }

  runningCount(kind?: OperationKind): number {
    let n = 0;
    for (const r of this.running.values()) if (kind === undefined || r.op.kind === kind) n++;
    return n;
  }

  private kick(): void {
    if (this.closed) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.pump()
      .catch((err: unknown) => this.o.logger.error({ err }, "scheduler pass failed"))
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    const pending = await this.o.store.operations.pending();
    if (pending.length === 0) return;
    const byProject = new Map<string, OperationRecord[]>();
    for (const op of pending) {
      const list = byProject.get(op.projectId) ?? [];
      list.push(op);
      byProject.set(op.projectId, list);
    }
    const projects = [...byProject.keys()];
    const start = this.rotation++ % projects.length;
    const ordered = [...projects.slice(start), ...projects.slice(0, start)];
    // Round robin: one operation per project per round, until nothing more fits.
    let progressed = true;
    while (progressed && !this.closed) {
      progressed = false;
      for (const projectId of ordered) {
        const queue = byProject.get(projectId) ?? [];
        const limits = await this.o.limitsOf(projectId);
        const idx = queue.findIndex((op) => this.fits(op, limits));
        if (idx < 0) continue;
        const [op] = queue.splice(idx, 1);
        if (op && (await this.dispatch(op))) progressed = true;
      }
    }
  }

  private fits(op: OperationRecord, limits: ProjectLimits): boolean {
    if (this.runningCount(op.kind) >= this.nodeSlots[op.kind]) return false;
    let projectRunning = 0;
    for (const r of this.running.values())
      if (r.op.projectId === op.projectId && r.op.kind === op.kind) projectRunning++;
    const cap =
      op.kind === "instance" ? limits.instance_max_concurrency : limits.images_import_max_concurrency;
    return projectRunning < cap;
  }

  private async dispatch(op: OperationRecord): Promise<boolean> {
    const handler = this.handlers.get(op.kind);
    if (!(await this.o.store.operations.transition(op.id, ["PENDING"], "ASSIGNED"))) return false;
    const abort = new AbortController();
    const entry: Running = { op, abort, done: Promise.resolve() };
    this.running.set(op.id, entry);
    entry.done = this.execute(op, handler, abort).finally(() => {
      this.running.delete(op.id);
      this.o.events.forget(op.id);
      this.kick();
    });
    return true;
  }

  private async execute(
    op: OperationRecord,
    handler: OperationHandler | undefined,
    abort: AbortController,
  ): Promise<void> {
    const t0 = Date.now();
    let outcome: HandlerOutcome | { status: "CANCELLED"; error: null };
    try {
      if (!handler) throw new AppError("internal", `no handler for operation kind ${op.kind}`);
      if (!(await this.o.store.operations.transition(op.id, ["ASSIGNED"], "EXECUTING", t0))) return;
      // Only status and start time changed since the pending row was read: no second read on the run path.
      const current: OperationRecord = { ...op, status: "EXECUTING", startedAt: t0 };
      outcome = await handler.run(current, {
        signal: abort.signal,
        emit: async (spid, type, data) => {
          await this.o.events.append(op.id, spid, type, data);
        },
        setMetadata: (m) => this.o.store.operations.updateMetadata(op.id, m),
      });
    } catch (err) {
      const app =
        err instanceof AppError || isStorageFull(err)
          ? toAppError(err)
          : new AppError("internal", "internal error", { cause: err });
      if (app.kind === "internal") this.o.logger.error({ err, opId: op.id }, "operation handler failed");
      outcome = { status: "FAILED", error: app.message };
    }
    if (abort.signal.aborted) {
      outcome =
        abort.signal.reason === "shutdown"
          ? { status: "FAILED", error: "the server shut down while the operation was running" }
          : ({ ...outcome, status: "CANCELLED", error: null } as
              | HandlerOutcome
              | { status: "CANCELLED"; error: null });
    }
    try {
      await this.finish(op, outcome, t0);
    } catch (err) {
      // Nothing of the result is stored (status and completion go together): the operation stays
      // active in the store, and the next start-up's recovery ends it FAILED.
      this.o.logger.error({ err, opId: op.id }, "the operation's result could not be stored");
    } finally {
      if ("cleanup" in outcome && outcome.cleanup)
        await outcome
          .cleanup()
          .catch((err: unknown) => this.o.logger.warn({ err, opId: op.id }, "operation cleanup failed"));
    }
  }

  /**
   * Stores the terminal status, the results and the `completion` event in one transaction. A
   * full data filesystem gets the storage reserve back and a few more tries: the result of a
   * finished run is worth more than the space it needs.
   */
  private async finish(
    op: OperationRecord,
    outcome: (HandlerOutcome | { status: "CANCELLED" | "FAILED"; error: string | null }) & {
      completion?: Record<string, unknown>;
    },
    startedAt: number,
  ): Promise<void> {
    const status = outcome.status as Extract<OperationStatus, "SUCCESS" | "FAILED" | "CANCELLED">;
    const { completion, ...rest } = outcome as HandlerOutcome;
    const durationMs = Date.now() - startedAt;
    const event = {
      status,
      duration_ms: durationMs,
      result_image_uuid: null,
      image_size_bytes: 0,
      error: outcome.error ?? null,
      ...(status === "CANCELLED" ? { result_image_uuid: null } : completion),
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const stored = await this.o.events.appendWith(op.id, 0, "completion", event, (tx) =>
          tx.operations.complete(op.id, { ...rest, status }),
        );
        if (stored)
          this.o.logger.info({ opId: op.id, kind: op.kind, status, durationMs }, "operation finished");
        return;
      } catch (err) {
        const wait = FULL_RETRY_MS[attempt];
        if (!isStorageFull(err) || wait === undefined) throw err;
        this.o.logger.warn({ err, opId: op.id, attempt }, "out of storage space storing a result: retrying");
        await this.o.relieveStorage?.();
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
}
