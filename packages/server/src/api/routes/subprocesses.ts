import { Type } from "@sinclair/typebox";
import type { Principal } from "../../auth/principal.js";
import { requirePermission } from "../../auth/principal.js";
import { failedPrecondition, invalidArgument, notFound, tooEarly } from "../../core/errors.js";
import { ACTIVE_STATUSES } from "../../core/operation-status.js";
import { ExecBodySchema, execSpecOf, parseSignal } from "../../instances/exec-spec.js";
import { type InstanceMetadata, StdinSchema } from "../../instances/spawn-request.js";
import type { OperationRecord } from "../../metadata/repos/operation-repo.js";
import { findOperation } from "../../operations/operation-lookup.js";
import type { ApiApp } from "../api-app.js";
import { sendWithOutputs } from "../output-response.js";
import { ErrorSchema } from "../pagination.js";
import { IdParamSchema } from "../params.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const Params = Type.Object({ operation_id: IdParamSchema });
const SpidParams = Type.Object({
  operation_id: IdParamSchema,
  spid: Type.String({ maxLength: 16, description: "process id in the instance, 1 = main" }),
});

/** What a route acting on a running instance can answer besides success. */
const LIVE_ERRORS = { 404: ErrorSchema, 409: ErrorSchema, 425: ErrorSchema };

function spidOf(s: string): number {
  if (!/^\d{1,9}$/.test(s) || Number(s) < 1) throw invalidArgument("spid must be a positive integer");
  return Number(s);
}

/** Extra processes in a running instance (spid ≥ 2) and stdin of any of them (spid 1 = main). */
export function subprocessRoutes(d: Services) {
  const activeInstance = (p: Principal, raw: string): Promise<OperationRecord> =>
    findOperation(d.operations, p.project.id, raw, "instance");
  /** The caller's instance, which must be running now: 409 once finished, 425 before it starts. */
  async function runningInstance(
    p: Principal,
    permission: Parameters<typeof requirePermission>[1],
    raw: string,
  ): Promise<OperationRecord> {
    requirePermission(p, permission);
    const op = await activeInstance(p, raw);
    if (!ACTIVE_STATUSES.includes(op.status))
      throw failedPrecondition(`the instance has finished (${op.status})`);
    if (!d.live.has(op.id))
      throw tooEarly("the instance is not running yet; retry once its main process has started");
    return op;
  }

  return async (app: ApiApp): Promise<void> => {
    app.post(
      "/operations/:operation_id/subprocesses",
      {
        schema: {
          summary: "Start another process in a running instance",
          params: Params,
          body: ExecBodySchema,
          response: { 201: Type.Object({ spid: Type.Integer() }), 400: ErrorSchema, ...LIVE_ERRORS },
        },
      },
      async (req, reply) => {
        const op = await runningInstance(principalOf(req), "spawn_disposable", req.params.operation_id);
        const spec = execSpecOf(req.body, { cwd: (op.metadata as InstanceMetadata).cwd });
        return reply.code(201).send({ spid: await d.live.exec(op.id, spec) });
      },
    );

    app.get(
      "/operations/:operation_id/subprocesses/:spid",
      {
        schema: {
          summary: "The folded result of a process so far",
          params: SpidParams,
          response: { 200: Type.Object({}, { additionalProperties: true }), 404: ErrorSchema },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const op = await activeInstance(p, req.params.operation_id);
        const spid = spidOf(req.params.spid);
        if (spid === 1 && !d.live.has(op.id)) {
          const result = (op.metadata as { result?: Record<string, unknown> }).result;
          if (result) return sendWithOutputs(d, req, reply, op.id, result);
        }
        if (!d.live.knows(op.id)) throw notFound(`no process ${spid} in this instance`);
        return sendWithOutputs(d, req, reply, op.id, d.live.result(op.id, spid) as Record<string, unknown>);
      },
    );

    app.delete(
      "/operations/:operation_id/subprocesses/:spid",
      {
        schema: {
          summary: "Signal a process (default TERM); the instance goes on unless it is spid 1",
          params: SpidParams,
          querystring: Type.Object({ signal: Type.Optional(Type.String({ maxLength: 16 })) }),
          response: { 202: Type.Object({ spid: Type.Integer(), signal: Type.String() }), ...LIVE_ERRORS },
        },
      },
      async (req, reply) => {
        const op = await runningInstance(principalOf(req), "cancel", req.params.operation_id);
        const spid = spidOf(req.params.spid);
        const sig = parseSignal(req.query.signal);
        await d.live.signal(op.id, spid, sig);
        return reply.code(202).send({ spid, signal: sig });
      },
    );

    app.post(
      "/operations/:operation_id/subprocesses/:spid/stdin",
      {
        schema: {
          summary: "Write to a process's stdin (and close it when close is true, the default)",
          params: SpidParams,
          body: StdinSchema,
          response: { 202: Type.Object({ spid: Type.Integer() }), 400: ErrorSchema, ...LIVE_ERRORS },
        },
      },
      async (req, reply) => {
        const op = await runningInstance(principalOf(req), "spawn_disposable", req.params.operation_id);
        const spid = spidOf(req.params.spid);
        const b = req.body;
        await d.live.writeStdin(op.id, spid, b.value ?? "", b.encoding ?? "ascii", b.close ?? true);
        return reply.code(202).send({ spid });
      },
    );
  };
}
