import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { HttpSend } from "./http.js";
import { createContreeMcpServer } from "./server.js";

/** Who sent an HTTP request to /mcp, as the host server authenticated it. */
export interface McpCaller {
  /** Stable for one credential (e.g. a hash of the token and project): a session stays with it. */
  key: string;
  /** The ConTree API as this caller: every tool call is checked like the caller's own request. */
  send: HttpSend;
}

/**
 * The streamable HTTP side of MCP for a host server that has already authenticated the request.
 * Stateful: one MCP server per session (a cancellation notification must reach the server that
 * runs the call it cancels), bound to the credential that opened it; idle sessions are closed.
 */
export interface McpHttpEndpoint {
  handle(req: IncomingMessage, res: ServerResponse, body: unknown, caller: McpCaller): Promise<void>;
  readonly sessions: number;
  close(): Promise<void>;
}

interface Session {
  key: string;
  transport: StreamableHTTPServerTransport;
  lastUsed: number;
}

export function createMcpHttpEndpoint(opts: { idleMs?: number; maxSessions?: number } = {}): McpHttpEndpoint {
  const idleMs = opts.idleMs ?? 30 * 60_000;
  const maxSessions = opts.maxSessions ?? 1000;
  const sessions = new Map<string, Session>();
  const sweeper = setInterval(
    () => {
      const now = Date.now();
      for (const s of sessions.values()) if (now - s.lastUsed > idleMs) void s.transport.close();
    },
    Math.min(idleMs, 60_000),
  );
  sweeper.unref();

  const reject = (res: ServerResponse, status: number, message: string) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
  };

  return {
    get sessions() {
      return sessions.size;
    },
    async handle(req, res, body, caller) {
      const sid = req.headers["mcp-session-id"];
      if (typeof sid === "string") {
        const s = sessions.get(sid);
        // Another credential presenting a session id learns nothing about it.
        if (!s || s.key !== caller.key) return reject(res, 404, "Session not found");
        s.lastUsed = Date.now();
        return s.transport.handleRequest(req, res, body);
      }
      if (req.method !== "POST" || !isInitializeRequest(body))
        return reject(res, 400, "Bad Request: no valid session id (send initialize first)");
      if (sessions.size >= maxSessions) return reject(res, 503, "too many MCP sessions; close idle ones");
      const session: Session = {
        key: caller.key,
        lastUsed: Date.now(),
        transport: new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            sessions.set(id, session);
          },
        }),
      };
      const server = createContreeMcpServer(caller.send, { localFiles: false });
      session.transport.onclose = () => {
        const id = session.transport.sessionId;
        if (id) sessions.delete(id);
        void server.close();
      };
      await server.connect(session.transport);
      await session.transport.handleRequest(req, res, body);
    },
    async close() {
      clearInterval(sweeper);
      await Promise.all([...sessions.values()].map((s) => s.transport.close()));
      sessions.clear();
    },
  };
}
