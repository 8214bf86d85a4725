/**
 * A fault-injecting HTTP proxy in front of a test registry, on 127.0.0.x only.
 *
 *   const proxy = await startFaultyProxy({ upstream: reg.url });
 *   proxy.addFault({ match: /\/blobs\//, fault: { kind: "corrupt" }, times: 1 });
 *   … parseImageReference(`${proxy.host}/fixtures/busybox`) …
 *   await proxy.stop();
 *
 * Faults apply to the first `times` matching requests (default: all of them), in the order added.
 * `requests` records every request (method, path, whether Authorization was sent, status).
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Fault =
  /** Answer with this status (429/503/…) and optional Retry-After, without contacting upstream. */
  | { kind: "status"; status: number; retryAfter?: string; body?: string }
  /** Flip one byte of the body at `offset` (default: the middle of the first chunk). */
  | { kind: "corrupt"; offset?: number }
  /** Send the first `afterBytes` bytes of the body, then destroy the connection. */
  | { kind: "drop"; afterBytes: number }
  /** Send the body at about this many bytes per second. */
  | { kind: "throttle"; bytesPerSecond: number }
  /** Send headers and `afterBytes` of the body, then go silent (connection stays open). */
  | { kind: "stall"; afterBytes: number }
  /** Answer 307 to `to` + the original path and query (e.g. a CDN on 127.0.0.2). */
  | { kind: "redirect"; to: string };

export interface FaultRule {
  readonly match: RegExp | ((req: IncomingMessage) => boolean);
  readonly fault: Fault;
  times?: number;
}

export interface ProxyRequestLog {
  readonly method: string;
  readonly path: string;
  readonly authorization: boolean;
  readonly range: string | undefined;
  status: number;
}

export interface FaultyProxy {
  readonly url: string;
  readonly host: string;
  readonly requests: ProxyRequestLog[];
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  stop(): Promise<void>;
}

export interface FaultyProxyOptions {
  /** http://127.0.0.1:PORT of the registry. */
  readonly upstream: string;
  /** Listen address (default 127.0.0.1; use 127.0.0.2 for a "different host"). */
  readonly listenHost?: string;
  /** Sent upstream instead of the client's Authorization (a CDN with its own access). */
  readonly upstreamAuthorization?: string;
}

export async function startFaultyProxy(options: FaultyProxyOptions): Promise<FaultyProxy> {
  const listenHost = options.listenHost ?? "127.0.0.1";
  if (!/^127\.\d+\.\d+\.\d+$/.test(listenHost)) throw new Error("faulty proxy listens on 127.0.0.0/8 only");
  const upstream = new URL(options.upstream);
  if (!/^127\./.test(upstream.hostname)) throw new Error("faulty proxy forwards to 127.0.0.0/8 only");
  const rules: FaultRule[] = [];
  const requests: ProxyRequestLog[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const takeFault = (req: IncomingMessage): Fault | undefined => {
    for (const r of rules) {
      const hit = typeof r.match === "function" ? r.match(req) : r.match.test(req.url ?? "");
      if (!hit || r.times === 0) continue;
      if (r.times !== undefined) r.times--;
      return r.fault;
    }
    return undefined;
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const entry: ProxyRequestLog = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      authorization: req.headers.authorization !== undefined,
      range: req.headers.range,
      status: 0,
    };
    requests.push(entry);
    const fault = takeFault(req);
    if (fault?.kind === "status") {
      entry.status = fault.status;
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (fault.retryAfter !== undefined) headers["retry-after"] = fault.retryAfter;
      res
        .writeHead(fault.status, headers)
        .end(fault.body ?? '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      return;
    }
    if (fault?.kind === "redirect") {
      entry.status = 307;
      res.writeHead(307, { location: `${fault.to.replace(/\/$/, "")}${req.url ?? "/"}` }).end();
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    if (options.upstreamAuthorization !== undefined) headers.authorization = options.upstreamAuthorization;
    const up = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (upRes) => {
        entry.status = upRes.statusCode ?? 502;
        const outHeaders = { ...upRes.headers };
        if (fault && fault.kind !== "corrupt") delete outHeaders["content-length"];
        res.writeHead(upRes.statusCode ?? 502, outHeaders);
        pump(upRes, res, fault, timers);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, listenHost, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${listenHost}:${port}`,
    host: `${listenHost}:${port}`,
    requests,
    addFault: (rule) => rules.push(rule),
    clearFaults: () => {
      rules.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function pump(
  src: IncomingMessage,
  dst: ServerResponse,
  fault: Fault | undefined,
  timers: Set<NodeJS.Timeout>,
): void {
  if (!fault) {
    src.pipe(dst);
    return;
  }
  let sent = 0;
  let corrupted = false;
  src.on("data", (chunk: Buffer) => {
    switch (fault.kind) {
      case "corrupt": {
        const at = (fault.offset ?? Math.floor(chunk.length / 2)) - sent;
        if (!corrupted && at >= 0 && at < chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[at] = (chunk[at] ?? 0) ^ 0xff;
          corrupted = true;
        }
        sent += chunk.length;
        dst.write(chunk);
        return;
      }
      case "drop":
      case "stall": {
        const room = fault.afterBytes - sent;
        if (room > 0) dst.write(chunk.subarray(0, room));
        sent += chunk.length;
        if (sent >= fault.afterBytes) {
          src.pause();
          src.removeAllListeners("data");
          if (fault.kind === "drop") {
            // Let the written bytes leave before cutting the connection.
            const t = setTimeout(() => dst.socket?.destroy(), 50);
            timers.add(t);
          }
        }
        return;
      }
      case "throttle": {
        src.pause();
        dst.write(chunk);
        sent += chunk.length;
        const t = setTimeout(() => src.resume(), Math.ceil((chunk.length / fault.bytesPerSecond) * 1000));
        timers.add(t);
        return;
      }
      default:
        dst.write(chunk);
    }
  });
  src.on("end", () => {
    if (fault.kind !== "drop" && fault.kind !== "stall") dst.end();
  });
}
