// Fault-injecting HTTP proxy on 127.0.0.1 for SDK tests against a real server: put it between the client
// and the server, then add faults. A fault applies to matching requests `times` times (default: always),
// in the order faults were added; the first matching fault with uses left wins.

import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface FaultMatch {
  method?: string;
  /** Exact path (without query) or a pattern tested against path+query. */
  path?: string | RegExp;
}

interface FaultBase {
  match?: FaultMatch;
  /** How many matching requests this fault applies to. Default: unlimited. */
  times?: number;
}

export type Fault = FaultBase &
  (
    | {
        /** Answer with `status` (e.g. 425/429/503) without forwarding. */
        kind: "status";
        status: number;
        /** Retry-After header value (seconds or an HTTP date). */
        retryAfter?: string;
        body?: unknown;
      }
    | {
        /**
         * Forward (so the server acts on it), throw the real answer away and answer `status` instead:
         * the reply was lost on the way back.
         */
        kind: "lose-reply";
        status: number;
        retryAfter?: string;
      }
    | { /** Destroy the connection without any answer. */ kind: "reset" }
    | {
        /** Forward, then cut the connection after this many response-body bytes (mid-frame is fine). */
        kind: "drop-stream";
        afterBytes: number;
      }
    | {
        /** Forward, re-chunking the response body and pausing between chunks. */
        kind: "slow-stream";
        chunkBytes?: number;
        delayMs: number;
      }
    | { /** Wait before forwarding (slow headers). */ kind: "delay"; ms: number }
  );

export interface ProxyLogEntry {
  method: string;
  url: string;
  /** The fault applied, if any. */
  fault?: Fault["kind"];
  status?: number;
  /** What the server answered when the proxy replaced the reply ("lose-reply"). */
  upstreamStatus?: number;
  lastEventId?: string;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` — use as the client's base URL (keep any prefix of the target's path yourself). */
  url: string;
  log: ProxyLogEntry[];
  add(...faults: Fault[]): void;
  clear(): void;
  stop(): Promise<void>;
}

function matches(m: FaultMatch | undefined, method: string, url: string): boolean {
  if (!m) return true;
  if (m.method && m.method.toUpperCase() !== method) return false;
  if (m.path === undefined) return true;
  if (typeof m.path === "string") return url.split("?")[0] === m.path;
  return m.path.test(url);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFaultProxy(target: string, initial: Fault[] = []): Promise<FaultProxy> {
  const upstream = new URL(target);
  const faults: { fault: Fault; left: number }[] = [];
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();
  const add = (...fs: Fault[]) => {
    for (const f of fs) faults.push({ fault: f, left: f.times ?? Number.POSITIVE_INFINITY });
  };
  add(...initial);

  const pick = (method: string, url: string): Fault | undefined => {
    const slot = faults.find((s) => s.left > 0 && matches(s.fault.match, method, url));
    if (!slot) return undefined;
    slot.left--;
    return slot.fault;
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    entry: ProxyLogEntry,
    fault: Fault | undefined,
  ) => {
    const headers = { ...req.headers, host: upstream.host };
    const up = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (upRes) => {
        entry.status = upRes.statusCode;
        if (fault?.kind === "lose-reply") {
          entry.upstreamStatus = upRes.statusCode;
          upRes.resume();
          upRes.on("end", () => {
            entry.status = fault.status;
            const headers: Record<string, string> = { "content-type": "application/json" };
            if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
            res.writeHead(fault.status, headers);
            res.end(JSON.stringify({ error: `injected ${fault.status}`, status: fault.status }));
          });
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (fault?.kind === "drop-stream") {
          let sent = 0;
          upRes.on("data", (chunk: Buffer) => {
            if (sent >= fault.afterBytes) return;
            const room = fault.afterBytes - sent;
            const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
            sent += part.length;
            if (sent < fault.afterBytes) {
              res.write(part);
              return;
            }
            upRes.destroy();
            // Cut only once the bytes are out: destroying with writes pending would drop them silently.
            res.write(part, () => setTimeout(() => res.socket?.destroy(), 10));
          });
          upRes.on("end", () => res.end());
          return;
        }
        if (fault?.kind === "slow-stream") {
          const size = fault.chunkBytes ?? 16;
          let chain = Promise.resolve();
          upRes.on("data", (chunk: Buffer) => {
            upRes.pause();
            chain = chain.then(async () => {
              for (let i = 0; i < chunk.length; i += size) {
                res.write(chunk.subarray(i, i + size));
                await sleep(fault.delayMs);
              }
              upRes.resume();
            });
          });
          upRes.on("end", () => void chain.then(() => res.end()));
          return;
        }
        upRes.pipe(res);
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "fault proxy: upstream unreachable", status: 502 }));
    });
    res.on("close", () => up.destroy());
    req.pipe(up);
  };

  const server = createServer((req, res) => {
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const fault = pick(method, url);
    const entry: ProxyLogEntry = { method, url };
    if (fault) entry.fault = fault.kind;
    const lastEventId = req.headers["last-event-id"];
    if (typeof lastEventId === "string") entry.lastEventId = lastEventId;
    log.push(entry);
    if (fault?.kind === "status") {
      req.resume();
      entry.status = fault.status;
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
      res.writeHead(fault.status, headers);
      res.end(JSON.stringify(fault.body ?? { error: `injected ${fault.status}`, status: fault.status }));
      return;
    }
    if (fault?.kind === "reset") {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === "delay") {
      req.pause();
      setTimeout(() => {
        req.resume();
        forward(req, res, entry, undefined);
      }, fault.ms);
      return;
    }
    forward(req, res, entry, fault);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    add,
    clear: () => {
      faults.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
