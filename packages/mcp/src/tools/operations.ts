import { z } from "zod";
import { ApiError, type Json, operationResponse } from "../contree-api.js";
import { ok, type ToolContext } from "../tool-kit.js";

export function registerOperationTools(ctx: ToolContext): void {
  const { server, api } = ctx;

  server.registerTool(
    "contree_get_operation",
    {
      description:
        "Status and result of one operation (free). For a run: metadata.result holds stdout, stderr and state.exit_code; result.image the saved image. Prefer contree_wait_operations to wait.",
      inputSchema: { operation_id: z.string().uuid() },
    },
    async (a) => ok(operationResponse(await api.operation(a.operation_id))),
  );

  server.registerTool(
    "contree_list_operations",
    {
      description:
        "Recent operations of this project, newest first (free). Filter by status (PENDING, EXECUTING, SUCCESS, FAILED, CANCELLED) and type (instance, image_import). Returns operations[] with uuid, kind, status, error, created_at.",
      inputSchema: {
        limit: z.number().int().min(1).max(1000).default(100),
        status: z.enum(["PENDING", "ASSIGNED", "EXECUTING", "SUCCESS", "FAILED", "CANCELLED"]).optional(),
        type: z.enum(["instance", "image_import"]).optional(),
        since: z.string().max(64).optional(),
      },
    },
    async (a) => {
      const doc = await api.json<Json | Json[]>({
        method: "GET",
        path: "/v1/operations",
        query: { limit: a.limit, offset: 0, status: a.status, kind: a.type, since: a.since },
      });
      const rows = (Array.isArray(doc) ? doc : (doc["operations"] as Json[] | undefined)) ?? [];
      return ok({
        operations: rows.map((r) => ({
          uuid: r["uuid"],
          kind: String(r["kind"] ?? "").toLowerCase(),
          status: r["status"],
          error: r["error"] ?? null,
          created_at: r["created_at"] ?? "",
        })),
      });
    },
  );

  server.registerTool(
    "contree_wait_operations",
    {
      description:
        "Wait for operations started with wait=false (free). mode=all (default) returns when all are done or timeout seconds pass; mode=any returns at the first one done and cancels the rest. Returns results{id: operation}, completed[], cancelled[], timed_out.",
      inputSchema: {
        operation_ids: z.array(z.string().uuid()).min(1).max(100),
        timeout: z.number().positive().max(86_400).default(300),
        mode: z.enum(["all", "any"]).default("all"),
      },
    },
    async (a, extra) => {
      const ids = [...new Set(a.operation_ids)];
      const deadline = Date.now() + a.timeout * 1000;
      const results: Record<string, Json> = {};
      const stop = new AbortController();
      const onAbort = () => stop.abort(extra.signal.reason);
      extra.signal.addEventListener("abort", onAbort, { once: true });
      const waitOne = async (id: string) => {
        try {
          results[id] = operationResponse(
            await api.waitOperation(id, { deadline, signal: stop.signal, keepOnAbort: true }),
          );
        } catch (err) {
          if (stop.signal.aborted) return;
          if (err instanceof ApiError && err.status === 408) return;
          results[id] = { uuid: id, status: "FAILED", kind: "instance", error: (err as Error).message };
        }
      };
      const waits = ids.map(waitOne);
      try {
        if (a.mode === "all") await Promise.all(waits);
        else {
          await Promise.race(waits);
          stop.abort();
          await Promise.allSettled(waits);
        }
      } finally {
        extra.signal.removeEventListener("abort", onAbort);
      }
      extra.signal.throwIfAborted();
      const pending = ids.filter((id) => !(id in results));
      if (a.mode === "any") await Promise.all(pending.map((id) => api.cancel(id).catch(() => undefined)));
      return ok({
        results,
        completed: Object.keys(results),
        cancelled: pending,
        timed_out: pending.length > 0 && a.mode === "all",
      });
    },
  );

  server.registerTool(
    "contree_cancel_operation",
    {
      description:
        "Cancel a pending or running operation (free). Returns cancelled (true once it is CANCELLED), operation_id.",
      inputSchema: { operation_id: z.string().uuid() },
    },
    async (a) => {
      const status = await api.cancel(a.operation_id);
      return ok({ cancelled: status === "CANCELLED", operation_id: a.operation_id });
    },
  );
}
