/**
 * HTTP and upgrade proxying to a sandbox's port over one fresh stream per request
 * (`connect`, runtime/port-connect.ts). Bodies are streamed both ways with backpressure (pipeline):
 * a slow reader slows the sandboxed server down, nothing piles up in this process. Hop-by-hop
 * headers are dropped both ways, and so are the caller's credentials (`Authorization`, `Project`):
 * the sandbox never sees the API token. The path and query after the port prefix go as they came.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream";
import { isAppError } from "../core/errors.js";

export type Connect = () => Promise<Duplex>;

/** RFC 9110 §7.6.1 plus the de-facto ones; `upgrade` is kept by the upgrade path only. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
/** Ours, never the sandbox's: the API token and the project header. */
const CREDENTIALS = new Set(["authorization", "project"]);

function connectionTokens(headers: IncomingMessage["headers"]): Set<string> {
  const v = headers.connection;
  return new Set(
    (Array.isArray(v) ? v.join(",") : (v ?? ""))
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ""),
  );
}

/** Raw header pairs to forward upstream (duplicates and case as received). */
function forwardHeaders(req: IncomingMessage, keepUpgrade: boolean, forwarded: Forwarded): string[] {
  const named = connectionTokens(req.headers);
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (CREDENTIALS.has(name) || name === "expect" || name.startsWith("x-forwarded-")) continue;
    if (keepUpgrade && (name === "connection" || name === "upgrade")) {
      out.push(raw[i] as string, raw[i + 1] as string);
      continue;
    }
    if (HOP_BY_HOP.has(name) || named.has(name)) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  out.push("X-Forwarded-Proto", forwarded.proto, "X-Forwarded-Prefix", forwarded.prefix);
  if (req.headers.host !== undefined) out.push("X-Forwarded-Host", req.headers.host);
  if (!keepUpgrade) out.push("Connection", "close");
  return out;
}

export interface Forwarded {
  proto: "http" | "https";
  /** The URL prefix the sandboxed app is served under (for apps that build absolute links). */
  prefix: string;
}

function sendError(res: ServerResponse, status: number, message: string, retryAfter?: number): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message, status });
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  };
  if (retryAfter !== undefined) headers["retry-after"] = retryAfter;
  res.writeHead(status, headers).end(body);
}

function statusOf(err: unknown): { status: number; message: string; retryAfter?: number } {
  if (isAppError(err))
    return err.retryAfter === undefined
      ? { status: err.status, message: err.message }
      : { status: err.status, message: err.message, retryAfter: err.retryAfter };
  return { status: 502, message: "the sandbox's port could not be reached" };
}

/**
 * Proxies one HTTP request to `target` (path and query) over a stream from `connect`. Resolves
 * once the exchange has ended either way; never throws (errors become a 502/4xx or a reset).
 */
export async function proxyHttp(
  req: IncomingMessage,
  res: ServerResponse,
  target: string,
  connect: Connect,
  forwarded: Forwarded,
): Promise<void> {
  let stream: Duplex;
  try {
    stream = await connect();
  } catch (err) {
    const e = statusOf(err);
    sendError(res, e.status, e.message, e.retryAfter);
    req.resume();
    return;
  }
  await new Promise<void>((done) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      stream.destroy();
      done();
    };
    // A client that goes away mid-exchange takes the sandbox side down with it.
    res.once("close", finish);
    const up = httpRequest({
      method: req.method,
      path: target,
      headers: forwardHeaders(req, false, forwarded),
      createConnection: () => stream as never,
      setHost: false,
    });
    up.once("response", (upRes) => {
      const named = connectionTokens(upRes.headers);
      const headers: string[] = [];
      const raw = upRes.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = (raw[i] as string).toLowerCase();
        if (HOP_BY_HOP.has(name) || named.has(name)) continue;
        headers.push(raw[i] as string, raw[i + 1] as string);
      }
      try {
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, headers);
      } catch {
        // Headers the sandbox sent that Node will not write again (invalid values).
        upRes.destroy();
        sendError(res, 502, "the sandbox's server sent an invalid response");
        finish();
        return;
      }
      pipeline(upRes, res, () => finish());
    });
    up.once("error", () => {
      sendError(res, 502, "the sandbox's port closed the connection without a response");
      finish();
    });
    pipeline(req, up, (err) => {
      if (err && !res.headersSent) {
        sendError(res, 502, "the request body could not be passed on");
        finish();
      }
    });
  });
}

/**
 * Passes an upgrade request (WebSocket or any other) on as raw bytes and then relays both ways;
 * the sandboxed server answers the handshake itself. Never throws once the stream is open.
 */
export async function proxyUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: string,
  connect: Connect,
  forwarded: Forwarded,
): Promise<void> {
  const stream = await connect();
  if (socket.destroyed) {
    stream.destroy();
    return;
  }
  const pairs = forwardHeaders(req, true, forwarded);
  let text = `${req.method ?? "GET"} ${target} HTTP/1.1\r\n`;
  for (let i = 0; i + 1 < pairs.length; i += 2) text += `${pairs[i]}: ${pairs[i + 1]}\r\n`;
  stream.write(`${text}\r\n`);
  if (head.length > 0) stream.write(head);
  const close = () => {
    stream.destroy();
    socket.destroy();
  };
  pipeline(socket, stream, close);
  pipeline(stream, socket, close);
}
