import type { EventLog, OperationEvent } from "./event-log.js";

/** Live events (and their payload bytes) buffered per follower before it reads from the log instead. */
export const MAX_BUFFERED = 1024;
export const MAX_BUFFERED_BYTES = 1024 * 1024;
const REPLAY_PAGE = 500;
/** How long a follower waits for a live event before it looks at the operation's status again. */
const IDLE_MS = 1000;

interface FollowOptions {
  /** Go on with live events until the `completion` event; otherwise the stored log only. */
  follow: boolean;
  /** Ends the iteration (the reader went away). */
  signal?: AbortSignal;
  /** Called once, when the stored log has been read and only live events are left to wait for. */
  onReplayed?: () => void;
}

/** Payload bytes an event brings into memory (a chunk in the output store is only a reference). */
function weight(e: OperationEvent): number {
  return typeof e.data["value"] === "string" ? e.data["value"].length + 256 : 256;
}

/**
 * An operation's events after id `after`: the stored log, then (with `follow`) live events until
 * `completion`, each id once and in order. A reader that falls behind never grows the heap:
 * past a small buffer, live events are dropped and read back from the log. Ends after the
 * `completion` event, when a finished operation's log is exhausted (a cursor past its end), or
 * on abort.
 */
export async function* followEvents(
  log: EventLog,
  operationId: string,
  after: number,
  o: FollowOptions,
): AsyncGenerator<OperationEvent, void, undefined> {
  const signal = o.signal;
  let cursor = after;
  let buffered: OperationEvent[] = [];
  let bufferedBytes = 0;
  let overflow = false;
  let wake: (() => void) | undefined;
  // Subscribed before the replay reads: an event is either in the log read or heard live (or both).
  const unsubscribe = o.follow
    ? log.subscribe(operationId, (e) => {
        const size = weight(e);
        if (overflow || buffered.length >= MAX_BUFFERED || bufferedBytes + size > MAX_BUFFERED_BYTES) {
          overflow = true;
          buffered = [];
          bufferedBytes = 0;
        } else {
          buffered.push(e);
          bufferedBytes += size;
        }
        wake?.();
      })
    : () => {};
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  /** Events of the log after the cursor; returns true once `completion` has been yielded. */
  async function* fromLog(): AsyncGenerator<OperationEvent, boolean, undefined> {
    for (;;) {
      const page = await log.replay(operationId, cursor, REPLAY_PAGE);
      for (const e of page) {
        if (signal?.aborted) return false;
        if (e.id <= cursor) continue;
        cursor = e.id;
        yield e;
        if (e.type === "completion") return true;
      }
      if (page.length < REPLAY_PAGE) return false;
    }
  }
  try {
    if (yield* fromLog()) return;
    o.onReplayed?.();
    if (!o.follow) return;
    let idle = false;
    while (!signal?.aborted) {
      if (overflow) {
        overflow = false;
        buffered = [];
        bufferedBytes = 0;
        if (yield* fromLog()) return;
        continue;
      }
      const batch = buffered;
      buffered = [];
      bufferedBytes = 0;
      for (const e of batch) {
        if (signal?.aborted) return;
        // A completion already behind the cursor: the reader has seen the end (or resumed past it).
        if (e.id <= cursor && e.type === "completion") return;
        if (e.id <= cursor) continue;
        cursor = e.id;
        yield e;
        if (e.type === "completion") return;
      }
      if (buffered.length > 0 || overflow) continue;
      // Status and completion are committed together: a finished operation's log is complete.
      if (idle || batch.length === 0) {
        if (await log.finished(operationId)) {
          yield* fromLog();
          return;
        }
      }
      if (buffered.length > 0 || overflow) continue;
      idle = await new Promise<boolean>((r) => {
        const timer = setTimeout(() => r(true), IDLE_MS);
        timer.unref();
        wake = () => {
          clearTimeout(timer);
          r(false);
        };
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
    signal?.removeEventListener("abort", onAbort);
  }
}
