import { createGzip, type Gzip, constants as zlibConstants } from "node:zlib";
import { Type } from "@sinclair/typebox";
import { requirePermission } from "../../auth/principal.js";
import { invalidArgument } from "../../core/errors.js";
import { parseFlag } from "../../core/time.js";
import { followEvents } from "../../operations/event-follower.js";
import type { OperationEvent } from "../../operations/event-log.js";
import { findOperation } from "../../operations/operation-lookup.js";
import { isOutputRef } from "../../outputs/output-ref.js";
import { chunkRepr } from "../../outputs/repr-chunks.js";
import type { ApiApp } from "../api-app.js";
import { acceptsGzip } from "../compression.js";
import { ErrorSchema, FlagSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";
import { OperationParams } from "./operations.js";

function frame(e: OperationEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}

/**
 * `GET /v1/operations/{id}/events`: the events of `followEvents` (replay of the durable log after
 * `since`/`Last-Event-Id`, then with `follow` live events until `completion`) as server-sent
 * events, with backpressure, keepalives and gzip when asked.
 */
export function eventsRoutes(d: Services) {
  const keepaliveMs = 15_000;
  return async (app: ApiApp): Promise<void> => {
    app.get(
      "/operations/:operation_id/events",
      {
        schema: {
          summary: "Server-sent events of an operation (replay, then live with follow=1)",
          params: OperationParams,
          querystring: Type.Object({
            follow: FlagSchema,
            since: Type.Optional(Type.String({ maxLength: 32, description: "event id to resume after" })),
            spid: Type.Optional(Type.String({ maxLength: 16 })),
          }),
          response: { 404: ErrorSchema, 400: ErrorSchema },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const { id } = await findOperation(d.operations, p.project.id, req.params.operation_id);
        const follow = parseFlag(req.query.follow);
        const cursorText = req.headers["last-event-id"] ?? req.query.since;
        let cursor = -1;
        if (typeof cursorText === "string" && cursorText.trim() !== "") {
          cursor = Number(cursorText.trim());
          if (!/^-?\d{1,15}$/.test(cursorText.trim()) || cursor < -1)
            throw invalidArgument("since / Last-Event-Id must be an integer event id");
        }
        let spid: number | undefined;
        if (req.query.spid !== undefined && req.query.spid !== "") {
          if (!/^\d{1,9}$/.test(req.query.spid)) throw invalidArgument("spid must be a non-negative integer");
          spid = Number(req.query.spid);
        }
        const wanted = (e: OperationEvent) =>
          spid === undefined || e.spid === spid || e.type === "completion";
        // Replaying stored output is heavy (read, encode, send up to tens of MB): gated, but only
        // the replay itself; following a running operation holds no slot (a follow lives as long
        // as its operation, and SDK waits must not be refused for it).
        const releaseReplay = (await d.outputs.has(id)) ? d.gate.enter(p) : () => {};
        /** The event as sent: a chunk kept in the output store is read back, one chunk at a time. */
        const reader = d.outputs.reader(id);
        const resolved = async (e: OperationEvent): Promise<OperationEvent> =>
          isOutputRef(e.data) ? { ...e, data: { ...(await chunkRepr(reader, e.data)) } } : e;

        reply.hijack();
        const res = reply.raw;
        res.once("close", releaseReplay);
        const gzip = acceptsGzip(String(req.headers["accept-encoding"] ?? ""));
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          "x-accel-buffering": "no",
          "x-request-id": req.id,
          ...(gzip ? { "content-encoding": "gzip", vary: "accept-encoding" } : {}),
        });
        // The 200 goes out now, not with the first frame: a follow resumed past the last event of
        // a quiet operation would otherwise wait for a keepalive (15 s) to learn it is connected.
        res.flushHeaders();
        let z: Gzip | undefined;
        if (gzip) {
          z = createGzip({ flush: zlibConstants.Z_SYNC_FLUSH });
          z.pipe(res);
        }
        let closed = false;
        // Resolves when the client is gone, so no wait on "drain" outlives the connection.
        let onGone: () => void = () => {};
        const gone = new Promise<void>((r) => (onGone = r));
        /** false: wait for drain before writing more. A closed stream never waits. */
        const write = (s: string): boolean => {
          if (closed) return true;
          if (z) {
            const ok = z.write(s);
            z.flush(zlibConstants.Z_SYNC_FLUSH);
            return ok;
          }
          return res.write(s);
        };
        const end = () => {
          if (closed) return;
          closed = true;
          if (z) z.end();
          else res.end();
        };
        const abort = new AbortController();
        const markClosed = () => {
          closed = true;
          onGone();
          abort.abort();
        };
        req.raw.on("close", markClosed);
        res.on("close", markClosed);
        const drained = () =>
          Promise.race([new Promise<void>((r) => (z ?? res).once("drain", () => r())), gone]);

        const keepalive = follow
          ? setInterval(() => {
              write(": keepalive\n\n");
            }, keepaliveMs)
          : undefined;
        try {
          const events = followEvents(d.events, id, cursor, {
            follow,
            signal: abort.signal,
            onReplayed: releaseReplay,
          });
          for await (const e of events) {
            if (closed) break;
            if (wanted(e) && !write(frame(await resolved(e)))) await drained();
          }
          end();
        } catch (err) {
          // Headers are out: all that is left is to end the stream (the client resumes by id).
          req.log.warn({ err }, "event stream ended early");
          end();
        } finally {
          releaseReplay();
          await reader.close().catch(() => undefined);
          if (keepalive) clearInterval(keepalive);
        }
      },
    );
  };
}
