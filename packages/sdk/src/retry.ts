// Retry rules shared by every request (contree-api.md 5.1, the CONTREE-CLIENT RetryPolicy):
// - 425 and 429 promise that nothing was processed, so any method may be replayed;
// - 410, 5xx and network failures are replayed only for GET/HEAD/DELETE: a POST that reached the server
//   may already have created an operation, and a second one would run the sandbox twice;
// - Retry-After (delta seconds or HTTP date) wins over the computed backoff;
// - backoff is exponential with jitter and bounded both per delay and in attempts.

export interface RetryPolicy {
  /** Total attempts including the first; 1 disables retries. Default 6. */
  maxAttempts?: number;
  /** First backoff delay. Default 200 ms. */
  initialDelayMs?: number;
  /** Cap on one computed delay. Default 10 s. */
  maxDelayMs?: number;
  /** Longest Retry-After we are willing to sleep; a longer one fails the call at once. Default 60 s. */
  maxRetryAfterMs?: number;
}

export type ResolvedRetryPolicy = Required<RetryPolicy>;

export const DEFAULT_RETRY_POLICY: ResolvedRetryPolicy = {
  maxAttempts: 6,
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
};

export function resolveRetryPolicy(p: RetryPolicy | false | undefined): ResolvedRetryPolicy {
  if (p === false) return { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 };
  return { ...DEFAULT_RETRY_POLICY, ...stripUndefined(p ?? {}) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);

export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method.toUpperCase());
}

/** `status` undefined means the request failed at the network level (no response). */
export function isRetryable(method: string, status: number | undefined): boolean {
  if (status === 425 || status === 429) return true;
  if (!isSafeMethod(method)) return false;
  return status === undefined || status === 410 || status >= 500;
}

/** Parses Retry-After: delta seconds (fractions tolerated) or an HTTP date. Returns ms, never negative. */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (v === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  // Only accept things that look like dates: Date.parse alone would read "12abc" as a year.
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Delay before attempt `attempt + 1` (attempt counts from 1). With a Retry-After it is used as is; otherwise
 * "equal jitter": half the exponential step fixed, half random, so concurrent clients spread out.
 */
export function backoffDelay(
  attempt: number,
  policy: ResolvedRetryPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  const step = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/** Sleeps unless the signal aborts first; rejects with the signal's reason then. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
