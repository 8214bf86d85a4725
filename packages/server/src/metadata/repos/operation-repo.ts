import { sql } from "kysely";
import type { OperationKind, OperationStatus } from "../../core/operation-status.js";
import type { Executor, OperationsTable } from "../schema.js";
import type { PageQuery } from "./page.js";

export {
  ACTIVE_STATUSES,
  type OperationKind,
  type OperationStatus,
  TERMINAL_STATUSES,
} from "../../core/operation-status.js";

export interface OperationRecord {
  id: string;
  projectId: string;
  kind: OperationKind;
  status: OperationStatus;
  error: string | null;
  /** Kind-specific, JSON: the normalised request plus, once known, `result`. */
  metadata: Record<string, unknown>;
  imageId: string | null;
  resultImageId: string | null;
  resultTag: string | null;
  imageSize: number;
  consumedCpu: number;
  consumedMemory: number;
  cancelRequested: boolean;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface OperationFilter extends PageQuery {
  status?: OperationStatus | undefined;
  kind?: OperationKind | undefined;
}

export interface OperationCompletion {
  status: Extract<OperationStatus, "SUCCESS" | "FAILED" | "CANCELLED">;
  error?: string | null;
  metadata?: Record<string, unknown>;
  resultImageId?: string | null;
  resultTag?: string | null;
  imageSize?: number;
  consumedCpu?: number;
  consumedMemory?: number;
}

export class OperationRepo {
  constructor(private readonly db: Executor) {}

  async insert(op: {
    id: string;
    projectId: string;
    kind: OperationKind;
    metadata: Record<string, unknown>;
    imageId?: string | null;
    createdAt: number;
  }): Promise<void> {
    await this.db
      .insertInto("operations")
      .values({
        id: op.id,
        project_id: op.projectId,
        kind: op.kind,
        status: "PENDING",
        error: null,
        metadata: JSON.stringify(op.metadata),
        image_id: op.imageId ?? null,
        result_image_id: null,
        result_tag: null,
        image_size: 0,
        consumed_cpu: 0,
        consumed_memory: 0,
        cancel_requested: 0,
        created_at: op.createdAt,
        started_at: null,
        finished_at: null,
      })
      .execute();
  }

  async get(id: string, projectId?: string): Promise<OperationRecord | undefined> {
    let q = this.db.selectFrom("operations").selectAll().where("id", "=", id);
    if (projectId !== undefined) q = q.where("project_id", "=", projectId);
    const r = await q.executeTakeFirst();
    return r && toOperation(r);
  }

  /** Just the status (undefined for an unknown id): no metadata document is read or parsed. */
  async statusOf(id: string): Promise<OperationStatus | undefined> {
    const r = await this.db.selectFrom("operations").select("status").where("id", "=", id).executeTakeFirst();
    return r?.status as OperationStatus | undefined;
  }

  /**
   * Operations without their metadata document (`metadata` is `{}`): listings show summaries, and
   * a page of documents (each up to the request body limit) is not parsed for nothing.
   */
  async list(projectId: string, f: OperationFilter): Promise<OperationRecord[]> {
    let q = this.db
      .selectFrom("operations")
      .select([
        "id",
        "project_id",
        "kind",
        "status",
        "error",
        sql<string>`'{}'`.as("metadata"),
        "image_id",
        "result_image_id",
        "result_tag",
        "image_size",
        "consumed_cpu",
        "consumed_memory",
        "cancel_requested",
        "created_at",
        "started_at",
        "finished_at",
      ])
      .where("project_id", "=", projectId);
    if (f.status !== undefined) q = q.where("status", "=", f.status);
    if (f.kind !== undefined) q = q.where("kind", "=", f.kind);
    if (f.since !== undefined) q = q.where("created_at", ">=", f.since);
    if (f.until !== undefined) q = q.where("created_at", "<=", f.until);
    const rows = await q
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(f.limit)
      .offset(f.offset)
      .execute();
    return rows.map(toOperation);
  }

  /** Every PENDING operation, oldest first (the scheduler picks among them). */
  async pending(limit = 1000): Promise<OperationRecord[]> {
    const rows = await this.db
      .selectFrom("operations")
      .selectAll()
      .where("status", "=", "PENDING")
      .orderBy("created_at")
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map(toOperation);
  }

  async inStatus(statuses: readonly OperationStatus[]): Promise<OperationRecord[]> {
    const rows = await this.db
      .selectFrom("operations")
      .selectAll()
      .where("status", "in", [...statuses])
      .execute();
    return rows.map(toOperation);
  }

  /** Compare-and-set on status; false when another actor moved the operation first. */
  async transition(
    id: string,
    from: readonly OperationStatus[],
    to: OperationStatus,
    now = Date.now(),
  ): Promise<boolean> {
    const r = await this.db
      .updateTable("operations")
      .set(to === "EXECUTING" ? { status: to, started_at: now } : { status: to })
      .where("id", "=", id)
      .where("status", "in", [...from])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async requestCancel(id: string): Promise<void> {
    await this.db.updateTable("operations").set({ cancel_requested: 1 }).where("id", "=", id).execute();
  }

  async updateMetadata(id: string, metadata: Record<string, unknown>): Promise<void> {
    await this.db
      .updateTable("operations")
      .set({ metadata: JSON.stringify(metadata) })
      .where("id", "=", id)
      .execute();
  }

  /** Moves an active operation to a terminal status with its results; false if already terminal. */
  async complete(id: string, c: OperationCompletion, now = Date.now()): Promise<boolean> {
    const set: Record<string, unknown> = { status: c.status, finished_at: now, error: c.error ?? null };
    if (c.metadata !== undefined) set["metadata"] = JSON.stringify(c.metadata);
    if (c.resultImageId !== undefined) set["result_image_id"] = c.resultImageId;
    if (c.resultTag !== undefined) set["result_tag"] = c.resultTag;
    if (c.imageSize !== undefined) set["image_size"] = c.imageSize;
    if (c.consumedCpu !== undefined) set["consumed_cpu"] = c.consumedCpu;
    if (c.consumedMemory !== undefined) set["consumed_memory"] = c.consumedMemory;
    const r = await this.db
      .updateTable("operations")
      .set(set)
      .where("id", "=", id)
      .where("status", "in", ["PENDING", "ASSIGNED", "EXECUTING"])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async countActive(projectId: string, kind: OperationKind): Promise<number> {
    const r = await this.db
      .selectFrom("operations")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("project_id", "=", projectId)
      .where("kind", "=", kind)
      .where("status", "in", ["ASSIGNED", "EXECUTING"])
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** Operations per kind in each of the given statuses, with the oldest creation time (metrics). */
  async countByStatus(
    statuses: readonly OperationStatus[],
  ): Promise<
    Array<{ kind: OperationKind; status: OperationStatus; count: number; oldestCreatedAt: number }>
  > {
    const rows = await this.db
      .selectFrom("operations")
      .select((eb) => [
        "kind",
        "status",
        eb.fn.countAll<number>().as("n"),
        eb.fn.min<number>("created_at").as("oldest"),
      ])
      .where("status", "in", [...statuses])
      .groupBy(["kind", "status"])
      .execute();
    return rows.map((r) => ({
      kind: r.kind as OperationKind,
      status: r.status as OperationStatus,
      count: Number(r.n),
      oldestCreatedAt: Number(r.oldest),
    }));
  }

  // Events: an append-only log per operation, `seq` from 0.
  async appendEvent(e: {
    operationId: string;
    seq: number;
    ts: number;
    spid: number | null;
    type: string;
    data: string;
  }): Promise<void> {
    await this.db
      .insertInto("operation_events")
      .values({ operation_id: e.operationId, seq: e.seq, ts: e.ts, spid: e.spid, type: e.type, data: e.data })
      .execute();
  }

  async events(
    operationId: string,
    afterSeq: number,
    limit = 1000,
  ): Promise<Array<{ seq: number; ts: number; spid: number | null; type: string; data: string }>> {
    return this.db
      .selectFrom("operation_events")
      .select(["seq", "ts", "spid", "type", "data"])
      .where("operation_id", "=", operationId)
      .where("seq", ">", afterSeq)
      .orderBy("seq")
      .limit(limit)
      .execute();
  }

  async lastEventSeq(operationId: string): Promise<number> {
    const r = await this.db
      .selectFrom("operation_events")
      .select(sql<number | null>`max(seq)`.as("m"))
      .where("operation_id", "=", operationId)
      .executeTakeFirst();
    return r?.m ?? -1;
  }
}

function toOperation(r: OperationsTable): OperationRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    kind: r.kind as OperationKind,
    status: r.status as OperationStatus,
    error: r.error,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    imageId: r.image_id,
    resultImageId: r.result_image_id,
    resultTag: r.result_tag,
    imageSize: r.image_size,
    consumedCpu: r.consumed_cpu,
    consumedMemory: r.consumed_memory,
    cancelRequested: r.cancel_requested === 1,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}
