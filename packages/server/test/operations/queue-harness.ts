/**
 * A real queue over a real SQLite file, with a test handler whose behaviour each operation names
 * in its metadata, and an observer: a second SQLite connection that sees only committed state.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import BetterSqlite3 from "better-sqlite3";
import pino from "pino";
import { DEFAULT_LIMITS } from "../../src/config/load-config.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";
import type { OperationRecord } from "../../src/metadata/repos/operation-repo.js";
import type { Project } from "../../src/metadata/repos/project-repo.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { EventLog } from "../../src/operations/event-log.js";
import type {
  HandlerContext,
  HandlerOutcome,
  OperationHandler,
} from "../../src/operations/operation-handler.js";
import { OperationQueue, type OperationQueueOptions } from "../../src/operations/operation-queue.js";

/** What the test handler does with an operation (its metadata `mode`). */
export type Mode =
  | "succeed" // a few events, then SUCCESS with a result
  | "fail" // FAILED, as a handler reports an expected failure (e.g. an import that timed out)
  | "throw" // the handler throws
  | "hang"; // runs until aborted (cancel, shutdown)

export const TORN_SQL = `
  SELECT id, status FROM operations o
  WHERE (status IN ('SUCCESS', 'FAILED', 'CANCELLED')) <>
        EXISTS (SELECT 1 FROM operation_events e WHERE e.operation_id = o.id AND e.type = 'completion')`;

export interface Torn {
  id: string;
  status: string;
}

class TestHandler implements OperationHandler {
  readonly kind = "instance" as const;
  /** Runs just before a successful handler returns its result. */
  beforeResult: (op: OperationRecord) => void = () => {};
  private readonly started = new Set<string>();
  private readonly waiters = new Map<string, () => void>();

  async run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome> {
    const mode = op.metadata["mode"] as Mode;
    this.started.add(op.id);
    this.waiters.get(op.id)?.();
    await ctx.emit(0, "init", { mode });
    await ctx.emit(1, "stdout", { value: `out of ${op.id}\n` });
    if (mode === "throw") throw new Error("handler blew up");
    if (mode === "fail") return { status: "FAILED", error: "import timed out after 1 s" };
    if (mode === "hang")
      await new Promise<void>((r) => {
        if (ctx.signal.aborted) r();
        ctx.signal.addEventListener("abort", () => r(), { once: true });
      });
    const size = Number(op.metadata["resultBytes"] ?? 0);
    this.beforeResult(op);
    return {
      status: "SUCCESS",
      metadata: { ...op.metadata, result: { stdout: "x".repeat(size), exit_code: 0 } },
      completion: { result_image_uuid: null, image_size_bytes: size },
    };
  }

  /** Resolves once the handler of `id` has started. */
  running(id: string): Promise<void> {
    if (this.started.has(id)) return Promise.resolve();
    return new Promise((r) => this.waiters.set(id, r));
  }
}

export interface QueueWorld {
  dir: string;
  path: string;
  store: SqliteMetadataStore;
  events: EventLog;
  queue: OperationQueue;
  handler: TestHandler;
  project: Project;
  /** Log lines (JSON) at warn and above. */
  logs: string[];
  /** Read-only second connection: committed state only. */
  observer: BetterSqlite3.Database;
  /** The store's own connection (for triggers and functions that run inside its statements). */
  raw: BetterSqlite3.Database;
  enqueue(mode: Mode, extra?: Record<string, unknown>): Promise<OperationRecord>;
  /** Operations whose committed status and completion event disagree, as the observer sees them. */
  torn(): Torn[];
  /**
   * Runs a check from the observer inside every write of the store's connection (after each
   * status change and each event insert, before that statement's transaction commits): anything
   * a reader could see between two commits is seen.
   */
  probeEveryWrite(): ReturnType<typeof probeEveryWrite>;
  /** A fresh queue over the same store, as after a restart. */
  restart(o?: Partial<OperationQueueOptions>): OperationQueue;
  close(): Promise<void>;
}

export async function queueWorld(o: Partial<OperationQueueOptions> = {}): Promise<QueueWorld> {
  const dir = await mkdtemp(join(tmpdir(), "contree-ops-"));
  const path = join(dir, "metadata.db");
  const store = SqliteMetadataStore.open(path);
  const project = await store.projects.create("p");
  const events = new EventLog(store);
  const handler = new TestHandler();
  const logs: string[] = [];
  const logger = pino(
    { level: "warn" },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  );
  const options = (extra: Partial<OperationQueueOptions>): OperationQueueOptions => ({
    store,
    events,
    logger,
    handlers: [handler],
    limitsOf: async () => ({ ...DEFAULT_LIMITS, instance_max_concurrency: 1000 }),
    nodeSlots: { instance: 1000 },
    ...o,
    ...extra,
  });
  const queue = new OperationQueue(options({}));
  const observer = new BetterSqlite3(path, { readonly: true });
  const tornStmt = observer.prepare(TORN_SQL);
  const raw = rawOf(store);
  const queues = [queue];
  return {
    dir,
    path,
    store,
    events,
    queue,
    handler,
    project,
    logs,
    observer,
    raw,
    enqueue: (mode, extra = {}) => queue.enqueue(project, "instance", { mode, ...extra }),
    torn: () => tornStmt.all() as Torn[],
    probeEveryWrite: () => probeEveryWrite(store, observer),
    restart(extra = {}) {
      const q = new OperationQueue(options(extra));
      queues.push(q);
      return q;
    },
    async close() {
      for (const q of queues) await q.close(1000);
      observer.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The store's own connection (private to it): a test reaches it to hook into its statements. */
export function rawOf(store: MetadataStore): BetterSqlite3.Database {
  return (store as unknown as { raw: BetterSqlite3.Database }).raw;
}

/**
 * Runs a check from `observer` (a second connection: committed state only) inside every write
 * of the store's connection: after each status change and each event insert, before that
 * statement's transaction commits. Whatever a reader could see between two commits is seen.
 */
export function probeEveryWrite(
  store: MetadataStore,
  observer: BetterSqlite3.Database,
): { torn: Torn[]; probes: () => number; stop: () => void } {
  const raw = rawOf(store);
  const stmt = observer.prepare(TORN_SQL);
  const torn: Torn[] = [];
  let probes = 0;
  raw.function("probe_committed", () => {
    probes++;
    torn.push(...(stmt.all() as Torn[]));
    return 0;
  });
  raw.exec(`
    CREATE TEMP TRIGGER probe_status AFTER UPDATE OF status ON main.operations
      BEGIN SELECT probe_committed(); END;
    CREATE TEMP TRIGGER probe_event AFTER INSERT ON main.operation_events
      BEGIN SELECT probe_committed(); END;`);
  return {
    torn,
    probes: () => probes,
    stop: () => raw.exec("DROP TRIGGER probe_status; DROP TRIGGER probe_event;"),
  };
}

/** Resolves when the operation's committed status is terminal. */
export async function settled(w: QueueWorld, id: string, timeoutMs = 20_000): Promise<OperationRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const op = await w.store.operations.get(id);
    if (op && ["SUCCESS", "FAILED", "CANCELLED"].includes(op.status)) return op;
    if (Date.now() > deadline) throw new Error(`operation ${id} still ${op?.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
