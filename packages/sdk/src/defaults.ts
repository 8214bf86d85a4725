// The SDK's defaults in one place (README "Timeouts, checks and defaults" lists them), and the checks
// that turn a value the server would refuse, or silently read differently, into a clear error before
// anything is sent.

import { InvalidArgumentError } from "./errors.js";

export const DEFAULTS = Object.freeze({
  /** Run time a run's sandbox gets, in seconds: the official CLI's default (the server's is 60). */
  timeoutSec: 120,
  /** Bytes of stdout and of stderr kept per process: the official CLI's 64 KiB (the server's is 1 MiB). */
  truncateOutputAt: 65_536,
  /**
   * Run time of a live sandbox (`client.sandbox()`), in seconds. Longer than a run's: a sandbox idles
   * between execs while its caller thinks. E2B's default sandbox lifetime is 300 s too.
   */
  sandboxTimeoutSec: 300,
  /** Deadline of one HTTP request, in ms (client option `timeoutMs`). Waiting for a run has none. */
  requestTimeoutMs: 300_000,
});

/** Most the server keeps of one stream (it caps `truncate_output_at` there). */
export const MAX_TRUNCATE_OUTPUT_AT = 16 * 1024 * 1024;

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return typeof value;
}

/** A positive whole number of seconds, as the wire's `timeout` is, or undefined. */
export function checkSeconds(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(
      `${name} must be a positive whole number of seconds, got ${describe(value)}`,
    );
  }
  return value;
}

/** A non-negative whole number of bytes, or undefined. */
export function checkBytes(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(
      `${name} must be a non-negative whole number of bytes, got ${describe(value)}`,
    );
  }
  return value;
}

/** A non-negative finite number of milliseconds, or undefined. */
export function checkMs(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(
      `${name} must be a non-negative number of milliseconds, got ${describe(value)}`,
    );
  }
  return value;
}

/** `timeoutSec`, or its older spelling `timeout`; both given and different is an error. */
export function runSeconds(opts: { timeoutSec?: number; timeout?: number }, fallback: number): number {
  const sec = checkSeconds("timeoutSec", opts.timeoutSec);
  const old = checkSeconds("timeout", opts.timeout);
  if (sec !== undefined && old !== undefined && sec !== old) {
    throw new InvalidArgumentError(
      `timeoutSec (${sec}) and its deprecated alias timeout (${old}) disagree; give only timeoutSec`,
    );
  }
  return sec ?? old ?? fallback;
}

/** How long a waiting call may take: `waitTimeoutMs`, else (older spelling) `timeoutMs`. */
export function waitLimitMs(opts: { waitTimeoutMs?: number; timeoutMs?: number }): number | undefined {
  return checkMs("waitTimeoutMs", opts.waitTimeoutMs) ?? checkMs("timeoutMs", opts.timeoutMs);
}
