import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import {
  AppError,
  type ErrorKind,
  HTTP_STATUS_BY_KIND,
  isAppError,
  isStorageFull,
  toAppError,
} from "../core/errors.js";
import type { HttpMetrics } from "../observability/metrics.js";

/** Fastify's own 4xx errors (parsing, validation, limits) translated into our kinds. */
function fromFastifyError(err: FastifyError): AppError | undefined {
  if (err.validation) {
    const first = err.validation[0];
    const custom = (first as { parentSchema?: Record<string, unknown> } | undefined)?.parentSchema?.[
      "x-error"
    ];
    if (typeof custom === "string") return new AppError("invalid_argument", custom);
    const where = err.validationContext ?? "request";
    const path = first?.instancePath ? first.instancePath.replace(/^\//, "").replace(/\//g, ".") : "";
    const msg = first ? `${where}${path ? `.${path}` : ""} ${first.message ?? "is invalid"}` : err.message;
    return new AppError("invalid_argument", msg);
  }
  const status = err.statusCode ?? 500;
  if (status >= 500) return undefined;
  const kind: ErrorKind =
    status === 413
      ? "payload_too_large"
      : status === 404
        ? "not_found"
        : status === 401
          ? "unauthenticated"
          : status === 403
            ? "permission_denied"
            : status === 429
              ? "resource_exhausted"
              : "invalid_argument";
  // Fastify's 4xx messages describe the request, never the host, so they are safe to return.
  const message = err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" ? "unsupported content type" : err.message;
  return new AppError(kind, message);
}

export function errorBody(err: AppError): { error: string; status: number } {
  return { error: err.message, status: HTTP_STATUS_BY_KIND[err.kind] };
}

export function makeErrorHandler(metrics: HttpMetrics) {
  return function handleError(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
    let app: AppError;
    if (isAppError(err) || isStorageFull(err)) app = toAppError(err);
    else
      app =
        fromFastifyError(err as FastifyError) ?? new AppError("internal", "internal error", { cause: err });

    const status = HTTP_STATUS_BY_KIND[app.kind] === 499 ? 409 : HTTP_STATUS_BY_KIND[app.kind];
    if (status >= 500) req.log.error({ err, kind: app.kind }, "request failed");
    else req.log.info({ kind: app.kind, msg: app.message }, "request rejected");
    metrics.errors.inc({ kind: app.kind });
    if (app.retryAfter !== undefined) void reply.header("retry-after", String(app.retryAfter));
    void reply.code(status).type("application/json").send({ error: app.message, status });
  };
}
