/**
 * Retry with exponential backoff, the one loop every registry request uses (a request, a token
 * fetch, a blob download resuming after a broken connection), and the caller's AbortSignal
 * turned into AppErrors.
 */
import { AppError, cancelled, deadlineExceeded, unavailable } from "../core/errors.js";

/**
 * The one message for a destination that refused the connection, could not be resolved or
 * reached, or that the destination policy refused. It names nothing (not even the port the
 * caller gave, so an open and a closed port read byte for byte the same); the cause, for the
 * server log, keeps the detail.
 */
export const UNREACHABLE = "registry is unreachable or not an allowed destination";

export function unreachable(err: unknown): AppError {
  return unavailable(UNREACHABLE, { cause: err });
}

export interface RetryPolicy {
  /** Total attempts per request, first one included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A Retry-After longer than this is not waited for; the call fails with retryAfter set. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
};

/** HTTP statuses worth another attempt. */
export const RETRY_STATUS: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/**
 * The attempts of one logical request. `failed` is called after each attempt that failed in a
 * way worth retrying: it throws `finalError` once the attempts are spent (or when the server
 * asks for a longer wait than we accept), else waits out the backoff.
 */
export class RetryBudget {
  #failures = 0;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** Attempts made so far that failed. */
  get failures(): number {
    return this.#failures;
  }

  /** The attempt under way is the last one the policy allows. */
  get onLastAttempt(): boolean {
    return this.#failures + 1 >= this.policy.attempts;
  }

  async failed(finalError: () => AppError, retryAfterMs?: number): Promise<void> {
    this.#failures++;
    if (this.#failures >= this.policy.attempts || (retryAfterMs ?? 0) > this.policy.maxRetryAfterMs)
      throw finalError();
    await sleep(Math.max(retryAfterMs ?? 0, backoff(this.policy, this.#failures)), this.signal);
  }
}

function backoff(policy: RetryPolicy, attempt: number): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(v: string | null): number | undefined {
  if (v === null) return undefined;
  const t = v.trim();
  if (/^\d{1,9}$/.test(t)) return Number(t) * 1000;
  const at = Date.parse(t);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - Date.now());
}

export function abortError(signal: AbortSignal): AppError {
  const r: unknown = signal.reason;
  if (r instanceof AppError) return r;
  if (r instanceof Error && r.name === "TimeoutError")
    return deadlineExceeded("registry operation timed out", { cause: r });
  return cancelled("registry operation cancelled", { cause: r });
}

export function throwIfCallerAborted(signal: AbortSignal | undefined, err: unknown): void {
  if (signal?.aborted) throw abortError(signal);
  if (err instanceof AppError && (err.kind === "cancelled" || err.kind === "deadline_exceeded")) throw err;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      if (signal) reject(abortError(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
