import { createHash } from "node:crypto";
import type { HttpSend, McpHttpEndpoint } from "@contree/mcp";
import { queryString } from "@contree/mcp";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/**
 * The ConTree API as the caller of an /mcp request: each call goes through `app.inject`, so it
 * meets the same authentication, permissions, limits and error mapping as the caller's own
 * request from outside, with no socket, no port to know and no second copy of any route.
 */
function callerSend(app: FastifyInstance, prefix: string, req: FastifyRequest): HttpSend {
  const base: Record<string, string> = {};
  if (req.headers.authorization) base["authorization"] = req.headers.authorization;
  const project = req.headers["project"];
  if (typeof project === "string") base["project"] = project;
  return async (r) => {
    const headers = { ...base };
    let payload: string | Buffer | undefined;
    if (r.json !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(r.json);
    } else if (r.body !== undefined) {
      headers["content-type"] = "application/octet-stream";
      payload = Buffer.from(r.body);
    }
    const res = await app.inject({
      method: r.method,
      url: `${prefix}${r.path}${queryString(r.query)}`,
      headers,
      ...(payload !== undefined ? { payload } : {}),
    });
    return {
      status: res.statusCode,
      header: (name) => {
        const v = res.headers[name.toLowerCase()];
        return v === undefined ? undefined : String(Array.isArray(v) ? v[0] : v);
      },
      body: res.rawPayload,
    };
  };
}

/** `<prefix>/mcp`: MCP over streamable HTTP, authenticated like every API route (onRequest hook). */
export function registerMcpRoute(app: FastifyInstance, prefix: string, endpoint: McpHttpEndpoint): void {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const key = createHash("sha256")
      .update(`${req.headers.authorization ?? ""}\n${String(req.headers["project"] ?? "")}`)
      .digest("hex");
    reply.hijack();
    await endpoint.handle(req.raw, reply.raw, req.body, { key, send: callerSend(app, prefix, req) });
  };
  // Not in the OpenAPI document: it describes the ConTree API, which MCP clients do not call.
  const schema = { hide: true };
  app.post(`${prefix}/mcp`, { schema, bodyLimit: 4 * 1024 * 1024 }, handler);
  app.get(`${prefix}/mcp`, { schema }, handler);
  app.delete(`${prefix}/mcp`, { schema }, handler);
  app.addHook("preClose", async () => endpoint.close());
}
