/**
 * The terminal channel (docs/terminals.md): a WebSocket at `GET <prefix>/v1/operations/{id}/terminal`
 * (the main process) and `…/subprocesses/{spid}/terminal`, for a process started with `tty: true`.
 * Binary frames are raw bytes both ways; text frames are JSON control messages: the client sends
 * `{"type":"resize","rows":R,"cols":C}`, the server ends with `{"type":"exit",…}` and a 1000 close.
 *
 * Authenticated like the API: `Authorization: Bearer`, or (browsers cannot set headers on a
 * WebSocket) the subprotocol `contree.token.<token>` (and `contree.project.<name>` for the `Project`
 * header) next to `contree.v1`; only `contree.v1` is
 * echoed, so the token is never in a URL, a log line or a response. Refusals are plain HTTP
 * answers in the API's error format, before the upgrade: 401, 403, 404 (another project's
 * operation is not found), 409 (finished, or no terminal), 425 (not started yet).
 *
 * Backpressure: input from the client pauses the socket while the terminal's pipe is full. Output
 * is sent as it comes; a client that lets more than MAX_UNSENT bytes pile up is closed with code
 * 4008 ("client too slow"): server memory stays bounded, the process is never slowed by a viewer,
 * and the event log still holds the output (stdout) for replay.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { requirePermission } from "../auth/principal.js";
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  resourceExhausted,
  toAppError,
  tooEarly,
} from "../core/errors.js";
import { ACTIVE_STATUSES } from "../core/operation-status.js";
import type { TerminalSession } from "../instances/process-supervisor.js";
import { MAX_TERMINAL_DIM } from "../instances/spawn-request.js";
import { findOperation } from "../operations/operation-lookup.js";
import type { Operations, Services } from "./services.js";

export const TERMINAL_PROTOCOL = "contree.v1";
const TOKEN_PROTOCOL = "contree.token.";
/** The `Project` header's value for browsers (an admin's project switch); project names are subprotocol tokens. */
const PROJECT_PROTOCOL = "contree.project.";
/** Output bytes queued for one client beyond which it is dropped (close 4008). */
export const MAX_UNSENT = 4 * 1024 * 1024;
/**
 * Channels open at once on one process: each may hold MAX_UNSENT of server memory, so without a
 * bound one tenant's idle clients could take the server's memory from everyone.
 */
export const MAX_ATTACHED = 8;
export const CLOSE_TOO_SLOW = 4008;
/** Control messages are tiny; anything larger from a client is hostile. */
const MAX_MESSAGE = 1024 * 1024;
const PING_MS = 30_000;

type Deps = Pick<Services, "auth" | "live" | "logger" | "config"> & {
  operations: Pick<Operations, "get">;
};
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Operation id and spid of a terminal URL under `prefix` (`<pathPrefix>/v1`), or null. */
export function terminalTarget(url: string | undefined, prefix: string): { id: string; spid: string } | null {
  const path = (url ?? "").split("?")[0] ?? "";
  if (!path.startsWith(`${prefix}/operations/`)) return null;
  const m = /^\/operations\/([^/]{1,64})(?:\/subprocesses\/([^/]{1,16}))?\/terminal$/.exec(
    path.slice(prefix.length),
  );
  if (!m) return null;
  return { id: decodeURIComponent(m[1] ?? ""), spid: m[2] ?? "1" };
}

/**
 * The upgrade handler for terminal URLs (`terminalTarget` tells which requests are its), and
 * `close`, which ends every open channel at shutdown with 1001 (going away), not as if the process
 * had ended; new upgrades are refused from then on.
 */
export function terminalUpgrade(d: Deps): { upgrade: UpgradeHandler; close(): void } {
  const prefix = `${d.config.pathPrefix}/v1`;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE,
    perMessageDeflate: false,
    handleProtocols: (offered) => (offered.has(TERMINAL_PROTOCOL) ? TERMINAL_PROTOCOL : false),
  });
  let closed = false;
  /** Open channels per `opId:spid` (counted from the upgrade on, so a burst cannot pass the bound). */
  const attached = new Map<string, number>();
  const release = (key: string) => {
    const n = (attached.get(key) ?? 1) - 1;
    if (n <= 0) attached.delete(key);
    else attached.set(key, n);
  };
  const upgrade: UpgradeHandler = (req, socket, head) => {
    socket.on("error", () => undefined);
    const target = terminalTarget(req.url, prefix);
    if (target === null || closed) return refuse(socket, notFound("not found"));
    open(d, req, target)
      .then((session) => {
        const key = `${target.id.toLowerCase()}:${Number(target.spid)}`;
        const n = attached.get(key) ?? 0;
        if (n >= MAX_ATTACHED)
          throw resourceExhausted(`at most ${MAX_ATTACHED} terminal channels are open on one process`);
        attached.set(key, n + 1);
        socket.once("close", () => release(key));
        wss.handleUpgrade(req, socket, head, (ws) => {
          const where = { opId: target.id.toLowerCase(), spid: Number(target.spid) };
          d.logger.info(where, "terminal attached");
          ws.on("close", (code) => d.logger.info({ ...where, code }, "terminal detached"));
          serve(d, ws, session);
        });
      })
      .catch((err: unknown) => refuse(socket, err));
  };
  return {
    upgrade,
    close() {
      closed = true;
      for (const ws of wss.clients) ws.close(1001, "server shutting down");
      // A client that does not answer the close is cut off rather than waited for.
      setTimeout(() => {
        for (const ws of wss.clients) ws.terminate();
      }, 1000).unref();
      wss.close();
    },
  };
}

async function open(
  d: Deps,
  req: IncomingMessage,
  target: { id: string; spid: string },
): Promise<TerminalSession> {
  const project = req.headers["project"] ?? offeredProtocol(req, PROJECT_PROTOCOL);
  const p = await d.auth.authenticate(
    authorizationOf(req),
    typeof project === "string" ? project : undefined,
  );
  requirePermission(p, "spawn_disposable");
  if (!/^\d{1,9}$/.test(target.spid) || Number(target.spid) < 1)
    throw invalidArgument("spid must be a positive integer");
  const op = await findOperation(d.operations, p.project.id, target.id, "instance");
  if (!ACTIVE_STATUSES.includes(op.status))
    throw failedPrecondition(`the instance has finished (${op.status})`);
  if (!d.live.has(op.id))
    throw tooEarly("the instance is not running yet; retry once its main process has started");
  return d.live.terminal(op.id, Number(target.spid));
}

/** The Authorization header, else a bearer token offered as the subprotocol `contree.token.<token>`. */
function authorizationOf(req: IncomingMessage): string | undefined {
  if (req.headers.authorization !== undefined) return req.headers.authorization;
  const token = offeredProtocol(req, TOKEN_PROTOCOL);
  return token ? `Bearer ${token}` : undefined;
}

/** What follows `prefix` in an offered subprotocol (browsers can set no header but this one). */
function offeredProtocol(req: IncomingMessage, prefix: string): string | undefined {
  const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((s) => s.trim());
  return offered.find((s) => s.startsWith(prefix))?.slice(prefix.length);
}

function refuse(socket: Duplex, err: unknown): void {
  const e = toAppError(err);
  const body = JSON.stringify({ error: e.message, status: e.status });
  socket.end(
    `HTTP/1.1 ${e.status} ${e.kind}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function serve(d: Deps, ws: WebSocket, t: TerminalSession): void {
  let alive = true;
  const off = t.onOutput((chunk) => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount + chunk.length > MAX_UNSENT) {
      ws.close(CLOSE_TOO_SLOW, "client too slow: output dropped (the event log keeps it)");
      return;
    }
    ws.send(chunk, { binary: true });
  });
  const input = t.input;
  const resume = () => ws.resume();
  input?.on("drain", resume);
  ws.on("message", (data: RawData, isBinary: boolean) => {
    const bytes = Buffer.isBuffer(data)
      ? data
      : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
    if (isBinary) {
      if (input === null || input.writableEnded || input.destroyed) return;
      if (!input.write(bytes)) ws.pause();
      return;
    }
    const msg = control(bytes);
    if (msg !== null) input?.resize(msg.rows, msg.cols);
  });
  const ping = setInterval(() => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
  }, PING_MS).unref();
  ws.on("pong", () => {
    alive = true;
  });
  const done = () => {
    clearInterval(ping);
    off();
    input?.off("drain", resume);
  };
  ws.on("close", done);
  ws.on("error", (err) => d.logger.debug({ err }, "terminal socket error"));
  void t.finished.then((o) => {
    if (ws.readyState !== ws.OPEN) return;
    const signal = o.status.signal > 0 ? o.status.signal : -1;
    ws.send(
      JSON.stringify({
        type: "exit",
        exit_code: signal > 0 ? -1 : o.status.exitCode,
        signal,
        timed_out: o.timedOut,
      }),
    );
    ws.close(1000, "process exited");
  });
}

/** A resize message, or null for anything else (ignored: clients may send what we do not know). */
function control(bytes: Buffer): { rows: number; cols: number } | null {
  let msg: unknown;
  try {
    msg = JSON.parse(bytes.toString("utf8"));
  } catch {
    return null;
  }
  if (typeof msg !== "object" || msg === null) return null;
  const m = msg as Record<string, unknown>;
  const dim = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= MAX_TERMINAL_DIM;
  if (m["type"] !== "resize" || !dim(m["rows"]) || !dim(m["cols"])) return null;
  return { rows: m["rows"] as number, cols: m["cols"] as number };
}
