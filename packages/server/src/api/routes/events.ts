import { createGzip, type Gzip, constants as zlibConstants } from "node:zlib";
import { Type } from "@sinclair/typebox";
import { requirePermission } from "../../auth/principal.js";
import { invalidArgument, notFound } from "../../core/errors.js";
import { isUuid } from "../../core/ids.js";
import { TERMINAL_STATUSES } from "../../core/operation-status.js";
import { parseFlag } from "../../core/time.js";
import type { OperationEvent } from "../../operations/event-log.js";
import { isOutputRef } from "../../outputs/output-ref.js";
import { chunkRepr } from "../../outputs/repr-chunks.js";
import type { ApiApp } from "../api-app.js";
import { acceptsGzip } from "../compression.js";
import { ErrorSchema, FlagSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";
import { OperationParams } from "./operations.js";

/** Live events (and their payload bytes) buffered per follower before it reads from the log. */
const MAX_BUFFERED = 1024;
const MAX_BUFFERED_BYTES = 1024 * 1024;
const REPLAY_PAGE = 500;

function frame(e: OperationEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}

/** Payload bytes an event brings into memory (a stored chunk is read only when it is sent). */
function weight(e: OperationEvent): number {
  // A stored chunk is a small reference until it is sent (read back then, one chunk at a time).
  if (isOutputRef(e.data)) return 256;
  return typeof e.data["value"] === "string" ? e.data["value"].length + 256 : 256;
}

/**
 * `GET /v1/operations/{id}/events`: replay of the durable log after `since`/`Last-Event-Id`,
 * then (with `follow`) live events until `completion`. A follower that falls behind never grows
 * the heap: beyond a small buffer it drops live events and catches up from the log instead.
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
        const id = req.params.operation_id.toLowerCase();
        const op = isUuid(id) ? await d.operations.get(id, p.project.id) : undefined;
        if (!op) throw notFound("operation not found");
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
        const markClosed = () => {
          closed = true;
          onGone();
        };
        req.raw.on("close", markClosed);
        res.on("close", markClosed);
        const drained = () =>
          Promise.race([new Promise<void>((r) => (z ?? res).once("drain", () => r())), gone]);

        // Live events arrive here while we replay; ids at or below the cursor are dropped.
        let buffered: OperationEvent[] = [];
        let bufferedBytes = 0;
        let overflow = false;
        let wake: (() => void) | undefined;
        const unsubscribe = follow
          ? d.events.subscribe(id, (e) => {
              const size = weight(e);
              if (overflow || buffered.length >= MAX_BUFFERED || bufferedBytes + size > MAX_BUFFERED_BYTES) {
                // Dropped here, read back from the log later: a slow reader costs no memory.
                overflow = true;
                buffered = [];
                bufferedBytes = 0;
              } else {
                buffered.push(e);
                bufferedBytes += size;
              }
              wake?.();
            })
          : () => {};
        const keepalive = follow
          ? setInterval(() => {
              write(": keepalive\n\n");
            }, keepaliveMs)
          : undefined;
        try {
          let done = false;
          const emit = async (e: OperationEvent) => {
            if (e.id <= cursor) return;
            cursor = e.id;
            if (wanted(e) && !write(frame(await resolved(e)))) await drained();
            if (e.type === "completion") done = true;
          };
          const replay = async () => {
            for (;;) {
              const page = await d.events.replay(id, cursor, REPLAY_PAGE);
              for (const e of page) {
                if (closed || done) return;
                await emit(e);
              }
              if (page.length < REPLAY_PAGE) return;
            }
          };
          await replay();
          if (follow) releaseReplay();
          if (!follow) {
            // A terminal operation's replay always ends with its completion event; the record turns
            // terminal a moment before that event is stored, so wait that moment out.
            for (let i = 0; i < 50 && !done && !closed && TERMINAL_STATUSES.includes(op.status); i++) {
              const last = await d.events.last(id);
              if (last?.type === "completion" && last.id <= cursor) break;
              await new Promise((r) => setTimeout(r, 20));
              await replay();
            }
            end();
            return;
          }
          while (!closed && !done) {
            if (overflow) {
              overflow = false;
              buffered = [];
              bufferedBytes = 0;
              await replay();
              continue;
            }
            const batch = buffered;
            buffered = [];
            bufferedBytes = 0;
            for (const e of batch) {
              if (closed || done) break;
              await emit(e);
            }
            if (done || closed) break;
            if (buffered.length === 0) {
              const current = await d.operations.get(id);
              if (current && TERMINAL_STATUSES.includes(current.status)) {
                await replay();
                if (done) break;
                // Resumed after the completion (or past the end): nothing more will ever come.
                const last = await d.events.last(id);
                if (last?.type === "completion" && last.id <= cursor) break;
              }
              await new Promise<void>((r) => {
                wake = r;
                setTimeout(r, 1000).unref();
                void gone.then(r);
              });
              wake = undefined;
            }
          }
          end();
        } catch (err) {
          // Headers are out: all that is left is to end the stream (the client resumes by id).
          req.log.warn({ err }, "event stream ended early");
          end();
        } finally {
          releaseReplay();
          await reader.close().catch(() => undefined);
          unsubscribe();
          if (keepalive) clearInterval(keepalive);
        }
      },
    );
  };
}
