import { Type } from "@sinclair/typebox";
import { isoMicros } from "../../core/time.js";
import type { OperationRecord } from "../../metadata/repos/operation-repo.js";

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const OperationSummarySchema = Type.Object(
  {
    uuid: Type.String(),
    kind: Type.String(),
    status: Type.String(),
    error: Nullable(Type.String()),
    created_at: Type.String(),
    started_at: Nullable(Type.String()),
    finished_at: Nullable(Type.String()),
    duration: Type.Number(),
    image_uuid: Nullable(Type.String()),
    result_image_uuid: Nullable(Type.String()),
    image_size: Type.Integer(),
    consumed_cpu: Type.Number(),
    consumed_memory: Type.Integer(),
    /** Extensions: present (true) when `image_uuid` / `result_image_uuid` name a deleted image. */
    image_deleted: Type.Optional(Type.Boolean()),
    result_image_deleted: Type.Optional(Type.Boolean()),
  },
  { $id: "OperationSummary", additionalProperties: true },
);

export const OperationSchema = Type.Object(
  {
    ...OperationSummarySchema.properties,
    metadata: Type.Record(Type.String(), Type.Unknown()),
    result: Type.Object({ image: Nullable(Type.String()), tag: Nullable(Type.String()) }),
  },
  { $id: "Operation", additionalProperties: true },
);

/** Seconds so far (0 while queued): clients need a number even before the end. */
function durationOf(op: OperationRecord, now: number): number {
  if (op.startedAt === null) return 0;
  return Math.max(0, ((op.finishedAt ?? now) - op.startedAt) / 1000);
}

/**
 * An operation's record outlives its images: the ids stay (lineage), and the document says
 * which are deleted, so a client is told rather than left with a dangling id.
 */
export function operationSummaryJson(
  op: OperationRecord,
  now = Date.now(),
  deleted: ReadonlySet<string> = new Set(),
) {
  return {
    uuid: op.id,
    kind: op.kind,
    status: op.status,
    error: op.error,
    created_at: isoMicros(op.createdAt),
    started_at: op.startedAt === null ? null : isoMicros(op.startedAt),
    finished_at: op.finishedAt === null ? null : isoMicros(op.finishedAt),
    duration: durationOf(op, now),
    image_uuid: op.imageId,
    result_image_uuid: op.resultImageId,
    image_size: op.imageSize,
    consumed_cpu: op.consumedCpu,
    consumed_memory: op.consumedMemory,
    ...(op.imageId !== null && deleted.has(op.imageId) ? { image_deleted: true } : {}),
    ...(op.resultImageId !== null && deleted.has(op.resultImageId) ? { result_image_deleted: true } : {}),
  };
}

export function operationJson(op: OperationRecord, now = Date.now(), deleted?: ReadonlySet<string>) {
  const metadata = op.kind === "instance" ? { result: null, ...op.metadata } : op.metadata;
  return {
    ...operationSummaryJson(op, now, deleted),
    metadata,
    result: { image: op.resultImageId, tag: op.resultTag },
  };
}
