import { Readable } from "node:stream";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import { effectiveLimits } from "../config/limits.js";
import { AppError, invalidArgument } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { createHttpMetrics } from "../observability/metrics.js";
import { typed } from "./api-app.js";
import { acceptsGzip } from "./compression.js";
import { makeErrorHandler } from "./error-handler.js";
import { registerMcpRoute } from "./mcp-route.js";
import "./request-context.js";
import { badRequestUrl, frameworkError, onClientError } from "./request-url.js";
import { metricsRoutes } from "./routes/metrics.js";
import { uiRoutes } from "./routes/ui.js";
import type { RouteModule, Services } from "./services.js";
import { UpgradeRouter } from "./upgrade-router.js";
import { buildValidator } from "./validators.js";
import { documentOperationShapes } from "./views/operation-docs.js";

const gzip = promisify(gzipCb);

/** MCP rejects JSON bodies over 64 KiB that carry a Content-Length; such bodies go out chunked. */
const MAX_FRAMED_JSON = 64 * 1024;
const GZIP_MIN = 1024;
/** Largest JSON body (uploads have their own limit, CONTREE_MAX_UPLOAD_BYTES). */
const BODY_LIMIT = 16 * 1024 * 1024;
/**
 * Requests that store something new: refused while the data filesystem is full (507). Stdin to
 * a running process is not one: it is what lets a run in flight finish and record its result.
 */
const WRITE_ROUTES = new Set([
  "POST /files",
  "POST /instances",
  "POST /images/import",
  "PATCH /images/:image_uuid/tag",
  "DELETE /images/:image_uuid/tag",
  "POST /operations/:operation_id/subprocesses",
]);

/**
 * The Fastify app over the services `main.ts` built: hooks, error mapping, the OpenAPI
 * document, and `routes` (normally every module of routes/index.ts) under `<prefix>/v1`.
 */
export async function buildApp(deps: Services, routes: readonly RouteModule[]): Promise<FastifyInstance> {
  const { config } = deps;
  const httpMetrics = createHttpMetrics(deps.metrics);
  // A body over a project's limit names the limit as whoami reports it to this caller.
  const handleError = makeErrorHandler(httpMetrics, (req, name) =>
    req.principal
      ? effectiveLimits(config.defaultLimits, req.principal.project)[name]
      : config.defaultLimits[name],
  );
  const prefix = `${config.pathPrefix}/v1`;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[\w.:-]{1,128}$/.test(given) ? given : newId();
    },
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 512 },
    bodyLimit: BODY_LIMIT,
    // One access-log line per request comes from our onResponse hook, with the route and timing.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Followers of event streams and idle keep-alive sockets must not hold shutdown hostage.
    forceCloseConnections: true,
    // Through the controller (not setValidatorCompiler) so contexts that add schemas keep it.
    schemaController: { compilersFactory: { buildValidator: buildValidator as never } },
    // URL errors Fastify and Node raise before routing get the usual {"error","status"} body.
    frameworkErrors: (err, req, reply) => handleError(frameworkError(err), req, reply),
    clientErrorHandler: onClientError,
  });

  app.setErrorHandler(handleError);
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send({ error: "not found", status: 404 });
  });

  // Clients send a JSON content type on bodiless GET/DELETE requests: an empty body is no body.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      const err = new Error("request body is not valid JSON") as Error & { statusCode: number };
      err.statusCode = 400;
      done(err, undefined);
    }
  });
  // Uploads (octet-stream, or anything else) are handed to the route as a stream, never buffered.
  app.addContentTypeParser("*", (_req, payload, done) => done(null, payload));

  app.decorateRequest("principal", null);
  // Upgrade requests bypass Fastify's routing: route modules register theirs here.
  const upgrades = new UpgradeRouter((err) => deps.logger.error({ err }, "upgrade handler failed"));
  upgrades.attach(app.server);
  app.decorate("upgrades", upgrades);
  app.addHook("preClose", async () => upgrades.closeAll());
  // Before anything reads a parameter: NUL and broken encodings never reach a route.
  app.addHook("onRequest", async (req, reply) => {
    const why = badRequestUrl(req.url);
    if (why !== undefined) throw invalidArgument(why);
    // A body declared larger than the route takes is refused from the header, before a byte of
    // it is read; the connection is closed rather than drained.
    const declared = req.headers["content-length"];
    const limit = req.routeOptions.bodyLimit ?? BODY_LIMIT;
    if (declared !== undefined && Number(declared) > limit) {
      void reply.header("connection", "close");
      throw new AppError("payload_too_large", `request body exceeds the limit of ${limit} bytes`);
    }
  });
  app.addHook("onRequest", async (req, reply) => {
    void reply.header("x-request-id", req.id);
    if (req.routeOptions.config.public || req.routeOptions.url === undefined) return;
    const project = req.headers["project"];
    req.principal = await deps.auth.authenticate(
      req.headers.authorization,
      typeof project === "string" ? project : undefined,
    );
    if (deps.storage && WRITE_ROUTES.has(`${req.method} ${req.routeOptions.url.slice(prefix.length)}`))
      deps.storage.assertWritable();
  });

  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    const labels = { method: req.method, route, status: String(reply.statusCode) };
    httpMetrics.requests.inc(labels);
    httpMetrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    req.log.info(
      {
        method: req.method,
        url: req.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 100) / 100,
      },
      "request",
    );
  });

  // gzip only when the client asks; large uncompressed JSON goes out without Content-Length.
  app.addHook("onSend", async (req, reply, payload) => {
    if (typeof payload !== "string" || reply.hasHeader("content-encoding")) return payload;
    const ct = String(reply.getHeader("content-type") ?? "");
    if (!ct.startsWith("application/json") && !ct.startsWith("text/")) return payload;
    const accept = String(req.headers["accept-encoding"] ?? "");
    if (payload.length >= GZIP_MIN && acceptsGzip(accept) && req.method !== "HEAD") {
      void reply.header("content-encoding", "gzip").header("vary", "accept-encoding");
      return gzip(payload);
    }
    if (Buffer.byteLength(payload) > MAX_FRAMED_JSON) {
      reply.removeHeader("content-length");
      return Readable.from([Buffer.from(payload)]);
    }
    return payload;
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "ConTree-compatible sandbox API", version: "1.0.0" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transformObject: (d) =>
      "openapiObject" in d ? documentOperationShapes(d.openapiObject) : d.swaggerObject,
  });

  await app.register(
    async (scope) => {
      const v1 = typed(scope);
      for (const route of routes) await route(deps)(v1);
      v1.get("/openapi.json", { config: { public: true }, schema: { hide: true } }, async () =>
        app.swagger(),
      );
    },
    { prefix },
  );
  await metricsRoutes(deps)(typed(app));
  await uiRoutes(deps)(typed(app));
  if (deps.mcp) registerMcpRoute(app, config.pathPrefix, deps.mcp);
  return app;
}
