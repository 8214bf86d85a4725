import { Type } from "@sinclair/typebox";
import { requirePermission } from "../../auth/principal.js";
import { invalidArgument } from "../../core/errors.js";
import { OPERATION_STATUSES, type OperationKind, type OperationStatus } from "../../core/operation-status.js";
import { findOperation } from "../../operations/operation-lookup.js";
import type { ApiApp } from "../api-app.js";
import { sendWithOutputs } from "../output-response.js";
import { ErrorSchema, FlagSchema, PageQuerySchema, parsePage } from "../pagination.js";
import { IdParamSchema } from "../params.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";
import {
  OperationSchema,
  OperationSummarySchema,
  operationJson,
  operationSummaryJson,
} from "../views/operation-view.js";

export const OperationParams = Type.Object({ operation_id: IdParamSchema });

export function operationsRoutes(d: Services) {
  return async (app: ApiApp): Promise<void> => {
    app.addSchema(OperationSummarySchema);
    app.addSchema(OperationSchema);

    app.get(
      "/operations",
      {
        schema: {
          summary: "List operations (a bare JSON array, newest first)",
          querystring: Type.Object({
            ...PageQuerySchema,
            status: Type.Optional(Type.String({ maxLength: 32 })),
            kind: Type.Optional(Type.String({ maxLength: 32 })),
          }),
          response: { 200: Type.Array(Type.Ref(OperationSummarySchema)), 400: ErrorSchema },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const q = req.query;
        let status: OperationStatus | undefined;
        if (q.status !== undefined && q.status !== "") {
          const s = q.status.toUpperCase();
          if (!(OPERATION_STATUSES as readonly string[]).includes(s)) {
            throw invalidArgument(`status must be one of ${OPERATION_STATUSES.join(", ")}`);
          }
          status = s as OperationStatus;
        }
        let kind: OperationKind | undefined;
        if (q.kind !== undefined && q.kind !== "") {
          if (q.kind !== "instance" && q.kind !== "image_import")
            throw invalidArgument('kind must be "instance" or "image_import"');
          kind = q.kind;
        }
        const rows = await d.operations.list(p.project.id, { ...parsePage(q), status, kind });
        const now = Date.now();
        const deleted = await d.images.deletedAmong(rows.flatMap((r) => [r.imageId, r.resultImageId]));
        return rows.map((r) => operationSummaryJson(r, now, deleted));
      },
    );

    app.get(
      "/operations/:operation_id",
      {
        schema: {
          summary: "An operation with its metadata and result",
          params: OperationParams,
          querystring: Type.Object({ inflight: FlagSchema }),
          response: { 200: Type.Ref(OperationSchema), 404: ErrorSchema },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const op = await findOperation(d.operations, p.project.id, req.params.operation_id);
        // Large output is stored apart and streamed from there (a heavy request, gated).
        const deleted = await d.images.deletedAmong([op.imageId, op.resultImageId]);
        return sendWithOutputs(d, req, reply, op.id, operationJson(op, Date.now(), deleted));
      },
    );

    app.delete(
      "/operations/:operation_id",
      {
        schema: {
          summary: "Cancel an operation (409 once it has finished)",
          params: OperationParams,
          response: {
            202: Type.Object({ uuid: Type.String(), status: Type.String() }),
            404: ErrorSchema,
            409: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "cancel");
        const op = await d.operations.cancel(p.project.id, req.params.operation_id);
        return reply.code(202).send({ uuid: op.id, status: op.status });
      },
    );
  };
}
