/**
 * The one `upgrade` listener of the HTTP server. Fastify routes plain requests only; requests that
 * ask for a protocol upgrade (WebSocket and any other) come here and go to the first handler whose
 * matcher accepts the path. Unmatched: 404 and the socket is destroyed. A handler's error never
 * reaches the server: it is answered (status from the error kind when nothing was written yet)
 * and the socket destroyed.
 */
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { isAppError } from "../core/errors.js";

declare module "fastify" {
  interface FastifyInstance {
    /** Handlers of upgrade requests (WebSocket); see UpgradeRouter. */
    upgrades: UpgradeRouter;
  }
}

/** Parameters a matcher took from the path, or null when the path is not its. */
export type PathMatcher = (pathname: string) => Record<string, string> | null;

export type UpgradeHandler = (
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  params: Record<string, string>,
) => Promise<void>;

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  425: "Too Early",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

/** Answers an upgrade request with a plain HTTP error (ConTree's `{"error","status"}`) and closes. */
export function refuseUpgrade(socket: Duplex, status: number, message: string, retryAfter?: number): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: message, status });
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}`,
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(retryAfter === undefined ? [] : [`Retry-After: ${retryAfter}`]),
    "Connection: close",
  ];
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
  // end() flushes; destroy once flushed, or soon if the peer never reads.
  const t = setTimeout(() => socket.destroy(), 1000);
  t.unref();
  socket.once("close", () => clearTimeout(t));
}

export class UpgradeRouter {
  private readonly routes: Array<{ match: PathMatcher; handler: UpgradeHandler }> = [];
  /** Sockets handed to handlers and still open (the HTTP server no longer tracks them). */
  private readonly open = new Set<Duplex>();

  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  register(match: PathMatcher, handler: UpgradeHandler): void {
    this.routes.push({ match, handler });
  }

  attach(server: Server): void {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.dispatch(req, socket, head);
    });
  }

  /** Destroys every upgraded socket (server shutdown: they would hold the listener open). */
  closeAll(): void {
    for (const s of this.open) s.destroy();
  }

  async dispatch(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // A socket error after hand-off is the handler's business; before it, nobody else listens.
    socket.on("error", () => socket.destroy());
    this.open.add(socket);
    socket.once("close", () => this.open.delete(socket));
    try {
      const pathname = (req.url ?? "/").split("?")[0] ?? "/";
      for (const r of this.routes) {
        const params = r.match(pathname);
        if (params === null) continue;
        await r.handler(req, socket, head, params);
        return;
      }
      refuseUpgrade(socket, 404, "not found");
    } catch (err) {
      if (isAppError(err)) refuseUpgrade(socket, err.status, err.message, err.retryAfter);
      else {
        this.onError(err);
        refuseUpgrade(socket, 500, "internal error");
      }
    }
  }
}
