// One root class, one subclass per kind. Guards compare the `kind` string, never `instanceof`, so they keep
// working when two copies of the SDK end up in one bundle or an error crosses a realm (worker, vm context).

import type { ProcessOutput } from "./run-operation.js";
import type { OperationResponse } from "./types.js";

export type ContreeErrorKind =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "gone"
  | "payload_too_large"
  | "unprocessable"
  | "too_early"
  | "rate_limited"
  | "server_error"
  | "http_error"
  | "network"
  | "timeout"
  | "aborted"
  | "configuration"
  | "protocol"
  | "operation_failed"
  | "command_failed"
  | "invalid_argument"
  | "local_file";

export interface ContreeErrorInit {
  status?: number;
  /** The server's `error` field, verbatim (usually a string). */
  error?: unknown;
  requestId?: string;
  /** Parsed Retry-After, in milliseconds. */
  retryAfterMs?: number;
  method?: string;
  url?: string;
  cause?: unknown;
}

export class ContreeError extends Error {
  readonly kind: ContreeErrorKind;
  /** Alias of `kind`, for code that switches on `err.code`. */
  readonly code: ContreeErrorKind;
  readonly status: number | undefined;
  readonly error: unknown;
  readonly requestId: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly method: string | undefined;
  readonly url: string | undefined;

  constructor(kind: ContreeErrorKind, message: string, init: ContreeErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ContreeError";
    this.kind = kind;
    this.code = kind;
    this.status = init.status;
    this.error = init.error;
    this.requestId = init.requestId;
    this.retryAfterMs = init.retryAfterMs;
    this.method = init.method;
    this.url = init.url;
  }
}

/** 400 */
export class BadRequestError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("bad_request", message, init);
    this.name = "BadRequestError";
  }
}

/** 401 */
export class UnauthorizedError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("unauthorized", message, init);
    this.name = "UnauthorizedError";
  }
}

/** 403 */
export class ForbiddenError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("forbidden", message, init);
    this.name = "ForbiddenError";
  }
}

/** 404 */
export class NotFoundError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("not_found", message, init);
    this.name = "NotFoundError";
  }
}

/** 409 */
export class ConflictError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("conflict", message, init);
    this.name = "ConflictError";
  }
}

/** 410 */
export class GoneError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("gone", message, init);
    this.name = "GoneError";
  }
}

/** 413 */
export class PayloadTooLargeError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("payload_too_large", message, init);
    this.name = "PayloadTooLargeError";
  }
}

/** 422 */
export class UnprocessableError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("unprocessable", message, init);
    this.name = "UnprocessableError";
  }
}

/** 425 */
export class TooEarlyError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("too_early", message, init);
    this.name = "TooEarlyError";
  }
}

/** 429 */
export class RateLimitedError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("rate_limited", message, init);
    this.name = "RateLimitedError";
  }
}

/** 5xx */
export class ServerError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("server_error", message, init);
    this.name = "ServerError";
  }
}

/** no response or a broken connection */
export class NetworkError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("network", message, init);
    this.name = "NetworkError";
  }
}

/** the call's deadline expired */
export class TimeoutError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("timeout", message, init);
    this.name = "TimeoutError";
  }
}

/** the caller's AbortSignal fired */
export class AbortError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("aborted", message, init);
    this.name = "AbortError";
  }
}

/** no URL/token, unknown profile, bad URL */
export class ConfigurationError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("configuration", message, init);
    this.name = "ConfigurationError";
  }
}

/** an answer the SDK cannot interpret (bad JSON, missing Location, bad base64) */
export class ProtocolError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("protocol", message, init);
    this.name = "ProtocolError";
  }
}

/** An operation ended FAILED or CANCELLED. A non-zero exit code is *not* this error. */
export class OperationFailedError extends ContreeError {
  readonly operation: OperationResponse;
  constructor(operation: OperationResponse) {
    const why = operation.error ? `: ${operation.error}` : "";
    super("operation_failed", `operation ${operation.uuid} ended ${operation.status}${why}`, {
      error: operation.error ?? undefined,
    });
    this.name = "OperationFailedError";
    this.operation = operation;
  }
}

/**
 * A command asked to be checked (`check: true`) exited non-zero, was killed by a signal, or ran out
 * of its `timeoutSec`. The whole result (output, exit code, the operation) is in `result`.
 */
export class CommandFailedError extends ContreeError {
  readonly exitCode: number;
  /** -1 when the process was not killed by a signal. */
  readonly signal: number;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  /** The full result: a `RunResult` for runs and session steps, a `SubprocessResult` for execs. */
  readonly result: ProcessOutput;
  constructor(what: string, result: ProcessOutput) {
    const how = result.timedOut
      ? `timed out${result.signal > 0 ? ` (killed by signal ${result.signal})` : ""}`
      : result.signal > 0
        ? `was killed by signal ${result.signal}`
        : `exited with code ${result.exitCode}`;
    const tail = result.stderr.trim().split("\n").slice(-3).join("\n");
    super("command_failed", `${what} ${how}${tail ? `: ${tail}` : ""}`);
    this.name = "CommandFailedError";
    this.exitCode = result.exitCode;
    this.signal = result.signal;
    this.timedOut = result.timedOut;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.result = result;
  }
}

/** A value the SDK refuses before sending anything (a fractional `timeoutSec`, an empty command, …). */
export class InvalidArgumentError extends ContreeError {
  constructor(message: string, init: ContreeErrorInit = {}) {
    super("invalid_argument", message, init);
    this.name = "InvalidArgumentError";
  }
}

/** A file on this machine could not be read (named by `{ path }`); `path` names it, `cause` is the OS error. */
export class LocalFileError extends ContreeError {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code;
    const why = typeof code === "string" ? code : cause instanceof Error ? cause.message : String(cause);
    super("local_file", `cannot read local file ${path}: ${why}`, { cause });
    this.name = "LocalFileError";
    this.path = path;
  }
}

type ErrorClass = new (message: string, init?: ContreeErrorInit) => ContreeError;

const STATUS_CLASSES: Record<number, ErrorClass> = {
  400: BadRequestError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  410: GoneError,
  413: PayloadTooLargeError,
  422: UnprocessableError,
  425: TooEarlyError,
  429: RateLimitedError,
};

/** Builds the error for an HTTP error status. `error` is the server's `error` field if it sent one. */
export function errorForStatus(status: number, error: unknown, init: ContreeErrorInit = {}): ContreeError {
  const text = error === undefined ? "" : typeof error === "string" ? error : JSON.stringify(error);
  const where = init.method && init.url ? ` (${init.method} ${init.url})` : "";
  const message = `HTTP ${status}${text ? `: ${text}` : ""}${where}`;
  const full = { ...init, status, error };
  const cls = STATUS_CLASSES[status];
  if (cls) return new cls(message, full);
  if (status >= 500) return new ServerError(message, full);
  return new ContreeError("http_error", message, full);
}

const KINDS: ReadonlySet<string> = new Set<ContreeErrorKind>([
  "bad_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "gone",
  "payload_too_large",
  "unprocessable",
  "too_early",
  "rate_limited",
  "server_error",
  "http_error",
  "network",
  "timeout",
  "aborted",
  "configuration",
  "protocol",
  "operation_failed",
  "command_failed",
  "invalid_argument",
  "local_file",
]);

function kindOf(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const kind = (e as { kind?: unknown }).kind;
  return typeof kind === "string" && KINDS.has(kind) ? kind : undefined;
}

export function isContreeError(e: unknown): e is ContreeError {
  return kindOf(e) !== undefined && typeof (e as { message?: unknown }).message === "string";
}

const guard =
  <T extends ContreeError>(kind: ContreeErrorKind) =>
  (e: unknown): e is T =>
    kindOf(e) === kind;

export const isBadRequest = guard<BadRequestError>("bad_request");
export const isUnauthorized = guard<UnauthorizedError>("unauthorized");
export const isForbidden = guard<ForbiddenError>("forbidden");
export const isNotFound = guard<NotFoundError>("not_found");
export const isConflict = guard<ConflictError>("conflict");
export const isGone = guard<GoneError>("gone");
export const isPayloadTooLarge = guard<PayloadTooLargeError>("payload_too_large");
export const isUnprocessable = guard<UnprocessableError>("unprocessable");
export const isTooEarly = guard<TooEarlyError>("too_early");
export const isRateLimited = guard<RateLimitedError>("rate_limited");
export const isServerError = guard<ServerError>("server_error");
export const isNetworkError = guard<NetworkError>("network");
export const isTimeout = guard<TimeoutError>("timeout");
export const isConfigurationError = guard<ConfigurationError>("configuration");
export const isProtocolError = guard<ProtocolError>("protocol");
export const isOperationFailed = guard<OperationFailedError>("operation_failed");
export const isCommandFailed = guard<CommandFailedError>("command_failed");
export const isInvalidArgument = guard<InvalidArgumentError>("invalid_argument");
export const isLocalFileError = guard<LocalFileError>("local_file");

/** True for our AbortError and for platform aborts (DOMException named "AbortError"). */
export function isAbort(e: unknown): boolean {
  if (kindOf(e) === "aborted") return true;
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}
