// The single place that talks HTTP: URL building, auth headers, deadlines, retries, error mapping.
// Everything above it deals in typed values.

import { type ConfigOptions, type ResolvedConfig, resolveConfig } from "./config.js";
import { abortErrorFrom, Deadline } from "./deadline.js";
import { checkMs, DEFAULTS } from "./defaults.js";
import { type ContreeError, errorForStatus, NetworkError, ProtocolError } from "./errors.js";
import { printAs } from "./printable.js";
import {
  backoffDelay,
  isRetryable,
  parseRetryAfter,
  type ResolvedRetryPolicy,
  type RetryPolicy,
  resolveRetryPolicy,
  sleep,
} from "./retry.js";

export const SDK_VERSION = "0.1.0";

/** What fetch accepts as a body (spelled this way so it type-checks with DOM and with Node's types). */
export type RequestBody = NonNullable<RequestInit["body"]>;

/** Options every SDK call accepts. */
export interface RequestOptions {
  signal?: AbortSignal;
  /**
   * Deadline of this call in ms, retries included. For streaming responses it covers the wait for
   * response headers only. Default: the client's `timeoutMs` (300 s). Calls that wait for a process
   * (`wait`, `runAndWait`, `session.run`, `sandbox.exec`) take `waitTimeoutMs` for the wait instead.
   */
  timeoutMs?: number;
  /** Override the client's retry policy for this call; `false` disables retries. */
  retry?: RetryPolicy | false;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

export type QueryScalar = string | number | boolean | Date;
export type QueryValue = QueryScalar | readonly QueryScalar[] | undefined | null;

export interface CallSpec {
  method: "GET" | "HEAD" | "POST" | "PATCH" | "DELETE";
  /** Path under `/v1`, starting with "/". Path parameters must already be encoded (use `seg`). */
  path: string;
  query?: Record<string, QueryValue>;
  json?: unknown;
  /** A body factory, so a retried request gets a fresh body (streams cannot be replayed). */
  body?: () => RequestBody | Promise<RequestBody>;
  contentType?: string;
  accept?: string;
  redirect?: "manual" | "follow";
  /** Non-2xx statuses the caller handles itself (e.g. 404 for an existence check). */
  expect?: readonly number[];
  /** The response body is consumed after the call returns: the deadline stops at the headers. */
  stream?: boolean;
}

export interface TransportOptions extends ConfigOptions {
  /** Deadline of each HTTP request in ms. Default 300 000. `0` disables. Waiting for a run is not bounded by it. */
  timeoutMs?: number;
  retry?: RetryPolicy | false;
  /** fetch implementation; default the global one. */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Prepended to the User-Agent (Node only: browsers do not let scripts set it). */
  userAgent?: string;
}

export const seg = (value: string | number): string => encodeURIComponent(String(value));

function encodeQuery(query: Record<string, QueryValue> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  const scalar = (v: QueryScalar): string =>
    typeof v === "boolean" ? (v ? "1" : "0") : v instanceof Date ? v.toISOString() : String(v);
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) for (const v of value as readonly QueryScalar[]) params.append(key, scalar(v));
    else params.append(key, scalar(value as QueryScalar));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

export function requestIdOf(headers: Headers): string | undefined {
  return headers.get("x-request-id") ?? headers.get("request-id") ?? headers.get("traceparent") ?? undefined;
}

/** Reads a JSON error body if there is one; the server's `error` field may be any JSON value. */
async function errorFromResponse(res: Response, method: string, url: string): Promise<ContreeError> {
  let error: unknown;
  if (method !== "HEAD") {
    const text = await res.text().catch(() => "");
    if (text) {
      try {
        const parsed: unknown = JSON.parse(text);
        error =
          typeof parsed === "object" && parsed !== null && "error" in parsed
            ? (parsed as { error: unknown }).error
            : parsed;
      } catch {
        error = text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
      }
    }
  }
  const init: Parameters<typeof errorForStatus>[2] = { method, url: new URL(url).pathname };
  const requestId = requestIdOf(res.headers);
  if (requestId) init.requestId = requestId;
  const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
  if (retryAfterMs !== undefined) init.retryAfterMs = retryAfterMs;
  return errorForStatus(res.status, error, init);
}

function userAgent(prefix: string | undefined): string | undefined {
  const g = globalThis as { process?: { versions?: { node?: string }; platform?: string; arch?: string } };
  const node = g.process?.versions?.node;
  if (!node) return undefined;
  const ua = `contree-sdk-js/${SDK_VERSION} Node.js/${node} ${g.process?.platform}-${g.process?.arch}`;
  return prefix ? `${prefix} ${ua}` : ua;
}

/** A URL without its user and password, for printing. */
function printableUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}

export class Transport {
  // ES private fields: the token lives in these, and no inspector or serialiser can reach them.
  #configPromise: Promise<ResolvedConfig> | undefined;
  readonly #options: TransportOptions;
  readonly #retryPolicy: ResolvedRetryPolicy;
  readonly #fetchImpl: typeof fetch;
  readonly defaultTimeoutMs: number;

  constructor(options: TransportOptions = {}) {
    this.#options = options;
    this.#retryPolicy = resolveRetryPolicy(options.retry);
    this.#fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    // Checked per call (deadlineMs), so that constructing a client never throws.
    this.defaultTimeoutMs = options.timeoutMs ?? DEFAULTS.requestTimeoutMs;
  }

  /** Resolved lazily (profile files need async I/O), once. */
  config(): Promise<ResolvedConfig> {
    const pending = this.#configPromise ?? resolveConfig(this.#options);
    if (pending !== this.#configPromise) {
      this.#configPromise = pending;
      // A failed resolution should not stick: the environment may be fixed and the call retried.
      pending.catch(() => {
        if (this.#configPromise === pending) this.#configPromise = undefined;
      });
    }
    return pending;
  }

  /** The deadline of one call: its own `timeoutMs`, else the client's; checked here. */
  private deadlineMs(opts: RequestOptions): number | undefined {
    return checkMs("timeoutMs", opts.timeoutMs ?? this.defaultTimeoutMs);
  }

  /** What printing shows: the URL given (without credentials) and the request deadline; never the token. */
  toJSON(): { url?: string; timeoutMs: number } {
    const url = printableUrl(this.#options.url);
    return url === undefined
      ? { timeoutMs: this.defaultTimeoutMs }
      : { url, timeoutMs: this.defaultTimeoutMs };
  }

  async url(path: string, query?: Record<string, QueryValue>): Promise<string> {
    const { apiUrl } = await this.config();
    return `${apiUrl}${path}${encodeQuery(query)}`;
  }

  /** Performs the call with retries; returns the Response (status 2xx, an `expect`ed status, or a 3xx). */
  async request(spec: CallSpec, opts: RequestOptions = {}): Promise<Response> {
    const deadline = new Deadline(opts.signal, this.deadlineMs(opts), `${spec.method} ${spec.path}`);
    let handedOver = false;
    try {
      const res = await this.attempts(spec, opts, deadline);
      if (spec.stream && res.body) {
        deadline.clearTimer();
        handedOver = true;
        return withCleanup(res, () => deadline.dispose());
      }
      return res;
    } finally {
      if (!handedOver) deadline.dispose();
    }
  }

  /** Like `request`, and reads the body inside the deadline. */
  async json<T>(spec: CallSpec, opts: RequestOptions = {}): Promise<T> {
    return this.read(spec, opts, async (res) => {
      const text = await res.text();
      if (text === "") return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch (cause) {
        throw new ProtocolError(`invalid JSON from ${spec.method} ${spec.path}`, { cause });
      }
    });
  }

  async bytes(spec: CallSpec, opts: RequestOptions = {}): Promise<Uint8Array> {
    return this.read(spec, opts, async (res) => new Uint8Array(await res.arrayBuffer()));
  }

  async text(spec: CallSpec, opts: RequestOptions = {}): Promise<string> {
    return this.read(spec, opts, (res) => res.text());
  }

  /** Status only (HEAD-style existence checks): answers true for 2xx, false for `expect`ed statuses. */
  async ok(spec: CallSpec, opts: RequestOptions = {}): Promise<boolean> {
    return this.read(spec, opts, async (res) => {
      await res.body?.cancel().catch(() => undefined);
      return res.ok;
    });
  }

  /** Performs the call and runs `read` on the response inside the same deadline. */
  async read<T>(spec: CallSpec, opts: RequestOptions, read: (res: Response) => Promise<T>): Promise<T> {
    const deadline = new Deadline(opts.signal, this.deadlineMs(opts), `${spec.method} ${spec.path}`);
    try {
      const res = await this.attempts(spec, opts, deadline);
      try {
        return await read(res);
      } catch (e) {
        deadline.throwIfAborted();
        if (e instanceof ProtocolError) throw e;
        throw new NetworkError(`reading the response of ${spec.method} ${spec.path} failed`, { cause: e });
      }
    } finally {
      deadline.dispose();
    }
  }

  private async attempts(spec: CallSpec, opts: RequestOptions, deadline: Deadline): Promise<Response> {
    const config = await this.config();
    const policy = opts.retry === undefined ? this.#retryPolicy : resolveRetryPolicy(opts.retry);
    const url = `${config.apiUrl}${spec.path}${encodeQuery(spec.query)}`;
    const headers = this.headers(config, spec, opts);
    for (let attempt = 1; ; attempt++) {
      deadline.throwIfAborted();
      let res: Response;
      try {
        const body = spec.body
          ? await spec.body()
          : spec.json !== undefined
            ? JSON.stringify(spec.json)
            : undefined;
        const init: RequestInit & { duplex?: "half" } = {
          method: spec.method,
          headers,
          signal: deadline.signal,
          redirect: spec.redirect ?? "follow",
        };
        if (body !== undefined) {
          init.body = body;
          // Node's fetch requires this for stream bodies; others ignore it.
          if (typeof body === "object" && body !== null && "getReader" in body) init.duplex = "half";
        }
        res = await this.#fetchImpl(url, init);
      } catch (cause) {
        const aborted = deadline.reason;
        if (aborted) throw aborted;
        const err = new NetworkError(`${spec.method} ${spec.path} failed: ${describe(cause)}`, {
          cause,
          method: spec.method,
          url: new URL(url).pathname,
        });
        if (attempt >= policy.maxAttempts || !isRetryable(spec.method, undefined)) throw err;
        await this.pause(backoffDelay(attempt, policy), deadline);
        continue;
      }
      if (res.ok || spec.expect?.includes(res.status) || (spec.redirect === "manual" && isRedirect(res))) {
        return res;
      }
      const err = await errorFromResponse(res, spec.method, url);
      const canRetry = attempt < policy.maxAttempts && isRetryable(spec.method, res.status);
      if (!canRetry || (err.retryAfterMs !== undefined && err.retryAfterMs > policy.maxRetryAfterMs))
        throw err;
      await this.pause(backoffDelay(attempt, policy, err.retryAfterMs), deadline);
    }
  }

  private async pause(ms: number, deadline: Deadline): Promise<void> {
    try {
      await sleep(ms, deadline.signal);
    } catch (reason) {
      throw abortErrorFrom(reason);
    }
  }

  private headers(config: ResolvedConfig, spec: CallSpec, opts: RequestOptions): Record<string, string> {
    const h: Record<string, string> = {
      Authorization: `Bearer ${config.token}`,
      Accept: spec.accept ?? "application/json",
    };
    if (config.project) h["Project"] = config.project;
    if (spec.json !== undefined) h["Content-Type"] = "application/json";
    else if (spec.contentType) h["Content-Type"] = spec.contentType;
    const ua = userAgent(this.#options.userAgent);
    if (ua) h["User-Agent"] = ua;
    return { ...h, ...this.#options.headers, ...opts.headers };
  }
}

/**
 * The same response with a body that runs `cleanup` once it is fully read, fails or is cancelled, so a
 * long-lived caller signal does not collect one abort listener per stream.
 */
function withCleanup(res: Response, cleanup: () => void): Response {
  const reader = res.body!.getReader();
  let done = false;
  const finish = () => {
    if (!done) {
      done = true;
      cleanup();
    }
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await reader.read();
        if (chunk.done) {
          finish();
          controller.close();
        } else {
          controller.enqueue(chunk.value);
        }
      } catch (e) {
        finish();
        controller.error(e);
      }
    },
    async cancel(reason) {
      finish();
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

function isRedirect(res: Response): boolean {
  return (res.status >= 300 && res.status < 400) || res.type === "opaqueredirect";
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined;
    return typeof code === "string" ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}

printAs(Transport, "Transport");
