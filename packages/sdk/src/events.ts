// Resumable operation event stream. The server's log is replayable and ids strictly increase, so a dropped
// connection is resumed with `Last-Event-Id` (and `since`, which older SDKs used) set to the last id we
// yielded; anything at or below it is skipped, so output is neither lost nor duplicated.

import type { ContreeApi } from "./api.js";
import { abortErrorFrom } from "./deadline.js";
import { isAbort, isContreeError, isTimeout, NetworkError, ProtocolError, ServerError } from "./errors.js";
import type { RequestOptions } from "./http.js";
import { backoffDelay, DEFAULT_RETRY_POLICY, sleep } from "./retry.js";
import { parseSseStream, type SseStreamOptions } from "./sse.js";
import { StreamReprTextDecoder } from "./stream-repr.js";
import { type OperationEvent, type OperationStatus, TERMINAL_STATUSES } from "./types.js";

export interface EventStreamOptions extends RequestOptions {
  /** Keep the stream open until `completion` (default true). false: replay what exists and stop. */
  follow?: boolean;
  /** Only events of this process (1 = main process, ≥ 2 = subprocesses). */
  spid?: number;
  /** Start after this event id (exclusive). */
  since?: number;
  /** Reconnects in a row without receiving an event before giving up. Default 8. */
  maxReconnects?: number;
}

export function isTerminal(status: OperationStatus | undefined): boolean {
  return status !== undefined && TERMINAL_STATUSES.includes(status);
}

export async function* streamEvents(
  api: ContreeApi,
  operationId: string,
  options: EventStreamOptions = {},
): AsyncGenerator<OperationEvent, void, undefined> {
  const follow = options.follow ?? true;
  const maxReconnects = options.maxReconnects ?? 8;
  const signal = options.signal;
  let last = options.since;
  let failures = 0;
  let sawTerminal = false;

  while (true) {
    const res = await api.operationEvents(
      operationId,
      { follow, spid: options.spid, since: last, lastEventId: last },
      options,
    );
    if (!res.body) throw new ProtocolError("event stream response has no body");
    let progressed = false;
    let dropped: unknown;
    // The server ends the stream right after `completion`: reading that end (instead of cancelling)
    // keeps the connection reusable.
    const sse: SseStreamOptions = {};
    try {
      for await (const frame of parseSseStream(res.body, sse)) {
        if (frame.event === "sse_error") {
          dropped = new ServerError(`event stream error: ${frame.data}`);
          break;
        }
        if (frame.data === "") continue;
        let event: OperationEvent;
        try {
          event = JSON.parse(frame.data) as OperationEvent;
        } catch (cause) {
          throw new ProtocolError("event frame is not JSON", { cause });
        }
        const id =
          typeof event.id === "number" ? event.id : frame.id !== undefined ? Number(frame.id) : Number.NaN;
        if (Number.isFinite(id)) {
          if (last !== undefined && id <= last) continue; // already yielded before a reconnect
          last = id;
        }
        progressed = true;
        failures = 0;
        if (event.type === "completion") sse.drainOnExitMs = 250;
        yield event;
        if (event.type === "completion") return;
      }
    } catch (e) {
      if (signal?.aborted) throw abortErrorFrom(signal.reason);
      if (isAbort(e) || isTimeout(e) || (isContreeError(e) && e.kind === "protocol")) throw e;
      dropped = e; // the connection broke mid-body: resume below
    }
    if (!follow) return;
    // A filtered stream of a finished operation may legitimately end without `completion`.
    if (sawTerminal && !progressed) return;
    if (!progressed) failures++;
    if (failures > maxReconnects) {
      throw new NetworkError(`event stream of ${operationId} kept ending before completion`, {
        cause: dropped,
      });
    }
    const op = await api.getOperation(operationId, options);
    if (isTerminal(op.status)) sawTerminal = true;
    if (failures > 0) {
      try {
        await sleep(backoffDelay(failures, DEFAULT_RETRY_POLICY), signal);
      } catch (reason) {
        throw abortErrorFrom(reason);
      }
    }
  }
}

/**
 * Decoded text of one output stream of one process. Ends at that process's `exit` (or `completion`).
 */
export async function* outputText(
  events: AsyncIterable<OperationEvent>,
  stream: "stdout" | "stderr",
  spid: number,
): AsyncGenerator<string, void, undefined> {
  const decoder = new StreamReprTextDecoder();
  for await (const event of events) {
    if (event.type === stream && (event.spid ?? 1) === spid) {
      const text = decoder.push(event.data);
      if (text) yield text;
    } else if (event.type === "exit" && event.spid === spid) {
      break;
    }
  }
  const rest = decoder.flush();
  if (rest) yield rest;
}
