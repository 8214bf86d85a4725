/**
 * Exposed ports (extension, docs/ports.md): whatever listens on a TCP port inside a running
 * instance, reached through the server over HTTP or any upgrade (WebSocket):
 *  - `/v1/operations/{id}/ports/{port}/…` with the API token (permission `spawn_disposable`,
 *    like starting a process in the instance: the proxy execs its relay there);
 *  - `/v1/p/{id}/{port}/{expires}/{sig}/…` with no token, from `POST …/ports/{port}/url`.
 * Another project's operation is a 404; a finished one 409, one not started yet 425.
 */
import type { IncomingMessage } from "node:http";
import { Type } from "@sinclair/typebox";
import type { Principal } from "../../auth/principal.js";
import { requirePermission } from "../../auth/principal.js";
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
  tooEarly,
} from "../../core/errors.js";
import { isUuid } from "../../core/ids.js";
import { ACTIVE_STATUSES } from "../../core/operation-status.js";
import type { OperationRecord } from "../../metadata/repos/operation-repo.js";
import { findOperation } from "../../operations/operation-lookup.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { IdParamSchema } from "../params.js";
import { type Connect, type Forwarded, proxyHttp, proxyUpgrade } from "../port-proxy.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";
import "../upgrade-router.js";

const PortParams = Type.Object({
  operation_id: IdParamSchema,
  port: Type.String({ maxLength: 5, description: "TCP port inside the sandbox, 1–65535" }),
});
const SignedParams = Type.Object({
  operation_id: IdParamSchema,
  port: Type.String({ maxLength: 5 }),
  expires: Type.String({ maxLength: 12 }),
  sig: Type.String({ maxLength: 64 }),
});
const UrlBody = Type.Object(
  {
    expires_in_seconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 7 * 86_400, description: "lifetime of the URL (default 3600)" }),
    ),
  },
  { additionalProperties: false },
);
const UrlReply = Type.Object({
  url: Type.String({ description: "absolute URL; anyone holding it reaches the port until it expires" }),
  path: Type.String({ description: "the same URL without scheme and host" }),
  expires_at: Type.String({ description: "RFC 3339" }),
});
const DEFAULT_URL_LIFETIME = 3600;
const DEFAULT_MAX_CONNECTIONS = 64;

/** Every HTTP method a proxied app may be sent. */
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/** Prefix (group 1) and the rest of the path (group 2) of the two URL forms. */
const TOKEN_PATH = /^(.*?\/v1\/operations\/([^/]+)\/ports\/([^/]+))(\/.*)?$/;
const SIGNED_PATH = /^(.*?\/v1\/p\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+))(\/.*)?$/;

export function portOf(raw: string): number {
  if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535)
    throw invalidArgument("port must be an integer from 1 to 65535");
  return Number(raw);
}

/** The path and query to send upstream, and the prefix they were under. */
function split(url: string, re: RegExp): { prefix: string; target: string } {
  const q = url.indexOf("?");
  const pathname = q < 0 ? url : url.slice(0, q);
  const m = re.exec(pathname);
  if (!m) throw notFound("not found");
  const rest = m[m.length - 1] ?? "/";
  return { prefix: m[1] as string, target: `${rest}${q < 0 ? "" : url.slice(q)}` };
}

function forwardedOf(req: IncomingMessage, prefix: string): Forwarded {
  const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
  return { proto: tls ? "https" : "http", prefix };
}

export function portsRoutes(d: Services) {
  const maxConnections = d.ports?.maxConnectionsPerInstance ?? DEFAULT_MAX_CONNECTIONS;

  function ensureRunning(op: OperationRecord): void {
    if (!ACTIVE_STATUSES.includes(op.status))
      throw failedPrecondition(`the instance has finished (${op.status})`);
    if (!d.live.has(op.id)) throw tooEarly("the instance is not running yet; retry once it has started");
  }

  /** The caller's running instance and a validated port (token route). */
  async function tokenTarget(p: Principal, rawId: string, rawPort: string) {
    requirePermission(p, "spawn_disposable");
    const port = portOf(rawPort);
    const op = await findOperation(d.operations, p.project.id, rawId, "instance");
    ensureRunning(op);
    return { op, port };
  }

  /** The instance a signed URL names, once its signature and expiry hold (403 otherwise). */
  async function signedTarget(rawId: string, rawPort: string, rawExpires: string, sig: string) {
    const signer = d.ports?.signer;
    const id = rawId.toLowerCase();
    const port = portOf(rawPort);
    const expires = /^\d{1,12}$/.test(rawExpires) ? Number(rawExpires) : Number.NaN;
    if (signer === undefined || !isUuid(id) || !signer.verify(id, port, expires, sig))
      throw permissionDenied("the URL's signature is invalid or has expired");
    const op = await d.operations.get(id);
    if (op === undefined) throw notFound("operation not found");
    if (op.kind !== "instance") throw notFound("operation not found");
    ensureRunning(op);
    return { op, port };
  }

  const connectTo =
    (opId: string, port: number): Connect =>
    () =>
      d.live.connectPort(opId, port, maxConnections);

  return async (app: ApiApp): Promise<void> => {
    app.post(
      "/operations/:operation_id/ports/:port/url",
      {
        schema: {
          summary: "A signed URL that reaches this port of the running instance without a token (extension)",
          params: PortParams,
          body: UrlBody,
          response: {
            201: UrlReply,
            400: ErrorSchema,
            404: ErrorSchema,
            409: ErrorSchema,
            425: ErrorSchema,
            503: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const { op, port } = await tokenTarget(principalOf(req), req.params.operation_id, req.params.port);
        const signer = d.ports?.signer;
        if (signer === undefined) throw failedPrecondition("signed port URLs are not configured");
        const expires =
          Math.floor(Date.now() / 1000) + (req.body?.expires_in_seconds ?? DEFAULT_URL_LIFETIME);
        const path = `${d.config.pathPrefix}/v1/p/${op.id}/${port}/${expires}/${signer.sign(op.id, port, expires)}/`;
        const host = req.headers.host ?? `${d.config.host}:${d.config.port}`;
        return reply.code(201).send({
          url: `${forwardedOf(req.raw, "").proto}://${host}${path}`,
          path,
          expires_at: new Date(expires * 1000).toISOString(),
        });
      },
    );

    // Bodies go upstream untouched: no parser reads them, no body limit applies.
    await app.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", (_req, _payload, done) => done(null, undefined));
      const proxied = { bodyLimit: Number.MAX_SAFE_INTEGER };
      for (const url of ["/operations/:operation_id/ports/:port", "/operations/:operation_id/ports/:port/*"])
        scope.route({
          method: METHODS,
          url,
          ...proxied,
          schema: {
            summary:
              "HTTP to a port inside the running instance (extension; WebSocket and other upgrades too)",
            params: Type.Object({ ...PortParams.properties, "*": Type.Optional(Type.String()) }),
            response: {
              400: ErrorSchema,
              404: ErrorSchema,
              409: ErrorSchema,
              425: ErrorSchema,
              502: ErrorSchema,
            },
          },
          handler: async (req, reply) => {
            const params = req.params as { operation_id: string; port: string };
            const { op, port } = await tokenTarget(principalOf(req), params.operation_id, params.port);
            const { prefix, target } = split(req.raw.url ?? "/", TOKEN_PATH);
            reply.hijack();
            await proxyHttp(req.raw, reply.raw, target, connectTo(op.id, port), forwardedOf(req.raw, prefix));
          },
        });
      for (const url of ["/p/:operation_id/:port/:expires/:sig", "/p/:operation_id/:port/:expires/:sig/*"])
        scope.route({
          method: METHODS,
          url,
          ...proxied,
          config: { public: true },
          schema: {
            summary: "HTTP to a port inside a running instance through a signed URL, no token (extension)",
            params: Type.Object({ ...SignedParams.properties, "*": Type.Optional(Type.String()) }),
            response: {
              400: ErrorSchema,
              403: ErrorSchema,
              404: ErrorSchema,
              409: ErrorSchema,
              502: ErrorSchema,
            },
          },
          handler: async (req, reply) => {
            const p = req.params as { operation_id: string; port: string; expires: string; sig: string };
            const { op, port } = await signedTarget(p.operation_id, p.port, p.expires, p.sig);
            const { prefix, target } = split(req.raw.url ?? "/", SIGNED_PATH);
            reply.hijack();
            await proxyHttp(req.raw, reply.raw, target, connectTo(op.id, port), forwardedOf(req.raw, prefix));
          },
        });
    });

    const base = `${d.config.pathPrefix}/v1`;
    app.upgrades.register(
      (pathname) => {
        const m = pathname.startsWith(`${base}/operations/`) ? TOKEN_PATH.exec(pathname) : null;
        return m ? { operation_id: m[2] as string, port: m[3] as string } : null;
      },
      async (req, socket, head, params) => {
        const project = req.headers["project"];
        const principal = await d.auth.authenticate(
          req.headers.authorization,
          typeof project === "string" ? project : undefined,
        );
        const { op, port } = await tokenTarget(principal, params["operation_id"] ?? "", params["port"] ?? "");
        const { prefix, target } = split(req.url ?? "/", TOKEN_PATH);
        await proxyUpgrade(req, socket, head, target, connectTo(op.id, port), forwardedOf(req, prefix));
      },
    );
    app.upgrades.register(
      (pathname) => {
        const m = pathname.startsWith(`${base}/p/`) ? SIGNED_PATH.exec(pathname) : null;
        return m
          ? {
              operation_id: m[2] as string,
              port: m[3] as string,
              expires: m[4] as string,
              sig: m[5] as string,
            }
          : null;
      },
      async (req, socket, head, params) => {
        const { op, port } = await signedTarget(
          params["operation_id"] ?? "",
          params["port"] ?? "",
          params["expires"] ?? "",
          params["sig"] ?? "",
        );
        const { prefix, target } = split(req.url ?? "/", SIGNED_PATH);
        await proxyUpgrade(req, socket, head, target, connectTo(op.id, port), forwardedOf(req, prefix));
      },
    );
  };
}
