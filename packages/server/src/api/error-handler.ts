import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { LIMITS, type LimitName, overLimitMessage } from "../config/limits.js";
import {
  AppError,
  type ErrorKind,
  HTTP_STATUS_BY_KIND,
  isAppError,
  isStorageFull,
  toAppError,
} from "../core/errors.js";
import type { HttpMetrics } from "../observability/metrics.js";

interface SchemaError {
  keyword: string;
  instancePath: string;
  message?: string;
  parentSchema?: Record<string, unknown>;
}

/** `/files/~1etc~1x/uid` → `files["/etc/x"].uid` (keys cut to 100 characters: they are hostile). */
function renderPath(pointer: string): string {
  let out = "";
  for (const raw of pointer.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += `[${JSON.stringify(seg.slice(0, 100))}]`;
  }
  return out;
}

/** The limit in force for the caller, when the failing schema stands for one ("x-limit"). */
type LimitOf = (req: FastifyRequest, name: LimitName) => number;

/**
 * A schema violation as one message: the "x-error" of the deepest failing schema that has one
 * (a union's own when no branch says more), with "{path}" filled in; an "x-limit" maximum names the
 * caller's limit as whoami reports it; otherwise Ajv's message after the field's path.
 */
function validationMessage(err: FastifyError, req: FastifyRequest, limitOf: LimitOf): string {
  const errors = (err.validation ?? []) as SchemaError[];
  const first = errors[0];
  if (!first) return err.message;
  const limit = first.parentSchema?.["x-limit"];
  if (first.keyword === "maximum" && typeof limit === "string" && Object.hasOwn(LIMITS, limit))
    return overLimitMessage(limit as LimitName, limitOf(req, limit as LimitName));
  // A missing property is the object's fault only in name: say which one. Among the branches
  // of a union, the one that matched deepest is the one the client meant.
  const depth = (e: SchemaError) => e.instancePath.split("/").length;
  const custom =
    first.keyword === "required"
      ? undefined
      : errors
          .filter((e) => typeof e.parentSchema?.["x-error"] === "string")
          .reduce<SchemaError | undefined>(
            (best, e) => (best && depth(best) >= depth(e) ? best : e),
            undefined,
          );
  if (custom)
    return String(custom.parentSchema?.["x-error"]).replace("{path}", renderPath(custom.instancePath));
  const where = err.validationContext ?? "request";
  const path = renderPath(first.instancePath);
  return `${where}${path ? (path.startsWith("[") ? path : `.${path}`) : ""} ${first.message ?? "is invalid"}`;
}

/** Fastify's own 4xx errors (parsing, validation, limits) translated into our kinds. */
function fromFastifyError(err: FastifyError, req: FastifyRequest, limitOf: LimitOf): AppError | undefined {
  if (err.validation) return new AppError("invalid_argument", validationMessage(err, req, limitOf));
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

export function makeErrorHandler(
  metrics: HttpMetrics,
  limitOf: LimitOf = (_req, name) => LIMITS[name].ceiling,
) {
  return function handleError(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
    let app: AppError;
    if (isAppError(err) || isStorageFull(err)) app = toAppError(err);
    else
      app =
        fromFastifyError(err as FastifyError, req, limitOf) ??
        new AppError("internal", "internal error", { cause: err });

    const status = HTTP_STATUS_BY_KIND[app.kind] === 499 ? 409 : HTTP_STATUS_BY_KIND[app.kind];
    if (status >= 500) req.log.error({ err, kind: app.kind }, "request failed");
    else req.log.info({ kind: app.kind, msg: app.message }, "request rejected");
    metrics.errors.inc({ kind: app.kind });
    if (app.retryAfter !== undefined) void reply.header("retry-after", String(app.retryAfter));
    void reply.code(status).type("application/json").send({ error: app.message, status });
  };
}
