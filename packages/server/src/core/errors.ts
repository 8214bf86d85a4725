/**
 * The one error type of the server. Every failure that crosses a subsystem boundary is an
 * AppError with a kind from a closed set; the kind alone decides the HTTP status (one table,
 * below), so handlers never pick status codes themselves. `message` is public and must never
 * contain host paths or internal detail; `cause` is for logs only.
 */

export const ERROR_KINDS = [
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "conflict",
  "failed_precondition",
  "unprocessable",
  "payload_too_large",
  "resource_exhausted",
  "too_early",
  "unavailable",
  "deadline_exceeded",
  "cancelled",
  "data_loss",
  "insufficient_storage",
  "internal",
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

/** Kind → HTTP status: the only place where statuses are chosen. */
export const HTTP_STATUS_BY_KIND: Readonly<Record<ErrorKind, number>> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  failed_precondition: 409,
  unprocessable: 422,
  payload_too_large: 413,
  resource_exhausted: 429,
  too_early: 425,
  unavailable: 503,
  deadline_exceeded: 504,
  cancelled: 499,
  data_loss: 500,
  insufficient_storage: 507,
  internal: 500,
};

interface AppErrorOptions {
  cause?: unknown;
  /** Seconds for a Retry-After header (429/503). */
  retryAfter?: number;
}

export class AppError extends Error {
  override readonly name = "AppError";
  readonly kind: ErrorKind;
  readonly retryAfter: number | undefined;

  constructor(kind: ErrorKind, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.retryAfter = options.retryAfter;
  }

  get status(): number {
    return HTTP_STATUS_BY_KIND[this.kind];
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return isAppError(err) && err.kind === kind;
}

export const invalidArgument = (msg: string, o?: AppErrorOptions) => new AppError("invalid_argument", msg, o);
export const unauthenticated = (msg: string, o?: AppErrorOptions) => new AppError("unauthenticated", msg, o);
export const permissionDenied = (msg: string, o?: AppErrorOptions) =>
  new AppError("permission_denied", msg, o);
export const notFound = (msg: string, o?: AppErrorOptions) => new AppError("not_found", msg, o);
export const conflict = (msg: string, o?: AppErrorOptions) => new AppError("conflict", msg, o);
export const failedPrecondition = (msg: string, o?: AppErrorOptions) =>
  new AppError("failed_precondition", msg, o);
export const unprocessable = (msg: string, o?: AppErrorOptions) => new AppError("unprocessable", msg, o);
export const payloadTooLarge = (msg: string, o?: AppErrorOptions) =>
  new AppError("payload_too_large", msg, o);
export const resourceExhausted = (msg: string, o?: AppErrorOptions) =>
  new AppError("resource_exhausted", msg, o);
/** Not yet possible, retry shortly (425 + Retry-After): e.g. a run whose sandbox is starting. */
export const tooEarly = (msg: string, o?: AppErrorOptions) =>
  new AppError("too_early", msg, { retryAfter: 1, ...o });
export const unavailable = (msg: string, o?: AppErrorOptions) => new AppError("unavailable", msg, o);
export const deadlineExceeded = (msg: string, o?: AppErrorOptions) =>
  new AppError("deadline_exceeded", msg, o);
export const cancelled = (msg: string, o?: AppErrorOptions) => new AppError("cancelled", msg, o);
export const dataLoss = (msg: string, o?: AppErrorOptions) => new AppError("data_loss", msg, o);
/** The server's storage is full (507): new writes are refused until space is freed. */
export const insufficientStorage = (msg: string, o?: AppErrorOptions) =>
  new AppError("insufficient_storage", msg, o);
export const internal = (msg: string, o?: AppErrorOptions) => new AppError("internal", msg, o);

/** Out of space on the data filesystem: ENOSPC/EDQUOT from a file call, SQLITE_FULL from SQLite. */
export function isStorageFull(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && e !== undefined && depth < 8; depth++) {
    if (isAppError(e) && e.kind === "insufficient_storage") return true;
    const code = (e as { code?: unknown }).code;
    if (code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export const STORAGE_FULL_MESSAGE = "the server is out of storage space; try again later";

/** Anything thrown that is not an AppError becomes `internal`; the original stays as cause. */
export function toAppError(err: unknown): AppError {
  if (isAppError(err) && (err.kind === "insufficient_storage" || err.kind === "payload_too_large"))
    return err;
  // Out of space wherever it surfaced (a file write, SQLite, a wrapped cause): one clear 507.
  if (isStorageFull(err)) return insufficientStorage(STORAGE_FULL_MESSAGE, { cause: err });
  if (isAppError(err)) return err;
  if (err instanceof Error && err.name === "AbortError")
    return cancelled("operation cancelled", { cause: err });
  return internal("internal error", { cause: err });
}
