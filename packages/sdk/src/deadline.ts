// One AbortController per call that fires on the caller's signal or on the call's own deadline, and
// remembers which of the two it was so the caller gets AbortError or TimeoutError, not a bare DOMException.

import { AbortError, ContreeError, TimeoutError } from "./errors.js";

export class Deadline {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly parent: AbortSignal | undefined,
    timeoutMs: number | undefined,
    what = "request",
  ) {
    if (parent?.aborted) {
      this.controller.abort(abortErrorFrom(parent.reason));
    } else if (parent) {
      this.onAbort = () => this.controller.abort(abortErrorFrom(parent.reason));
      parent.addEventListener("abort", this.onAbort, { once: true });
    }
    if (timeoutMs !== undefined && timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      this.timer = setTimeout(() => {
        this.controller.abort(new TimeoutError(`${what} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The reason as a ContreeError (AbortError or TimeoutError) if aborted. */
  get reason(): ContreeError | undefined {
    const r: unknown = this.controller.signal.reason;
    return this.controller.signal.aborted ? (r instanceof ContreeError ? r : abortErrorFrom(r)) : undefined;
  }

  /** Stops the deadline timer; the caller's signal still applies (streams keep honouring it). */
  clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stops everything; call once the call has fully finished. */
  dispose(): void {
    this.clearTimer();
    if (this.onAbort) this.parent?.removeEventListener("abort", this.onAbort);
  }

  throwIfAborted(): void {
    const r = this.reason;
    if (r) throw r;
  }
}

export function abortErrorFrom(reason: unknown): ContreeError {
  if (reason instanceof ContreeError) return reason;
  if (
    typeof reason === "object" &&
    reason !== null &&
    (reason as { name?: unknown }).name === "TimeoutError"
  ) {
    return new TimeoutError("operation timed out", { cause: reason });
  }
  return new AbortError("request aborted", { cause: reason });
}
