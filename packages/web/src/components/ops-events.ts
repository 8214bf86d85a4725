/**
 * Follows an operation's event stream (`GET /v1/operations/{id}/events?follow=1`). EventSource
 * cannot send the bearer header, so this reads the stream with fetch and parses the SSE frames
 * itself. The last event id seen is the resume point: a stream that ends before `completion`
 * (network loss, a proxy timeout, a server restart) is reopened with `Last-Event-Id`, and an event
 * already seen is dropped, so a reconnect neither loses nor repeats output.
 */
import { type ApiClient, ApiError } from "../api/client.js";
import { SseParser } from "./ops-sse.js";

export interface OpEvent {
  id: number;
  ts: string;
  spid: number;
  type: string;
  data: Record<string, unknown>;
}

export type StreamState = "connecting" | "live" | "reconnecting" | "done";

export interface FollowOptions {
  onEvent(e: OpEvent): void;
  onState?(s: StreamState): void;
  /** A refusal that retrying will not fix (403, 404): the stream stops. */
  onFatal?(message: string): void;
  signal: AbortSignal;
}

/** Statuses after which a retry may succeed (not ready yet, rate-limited, server restarting). */
const RETRYABLE = new Set([408, 410, 425, 429, 500, 502, 503, 504]);

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

function asEvent(data: string): OpEvent | undefined {
  try {
    const j: unknown = JSON.parse(data);
    if (j === null || typeof j !== "object") return undefined;
    const e = j as Partial<OpEvent>;
    if (typeof e.id !== "number" || typeof e.type !== "string") return undefined;
    return {
      id: e.id,
      ts: typeof e.ts === "string" ? e.ts : "",
      spid: typeof e.spid === "number" ? e.spid : 0,
      type: e.type,
      data: e.data !== null && typeof e.data === "object" ? e.data : {},
    };
  } catch {
    return undefined; // e.g. `event: sse_error` with a plain-text line: reconnect handles it
  }
}

/** Resolves when the operation completed, the caller aborted, or the server refused for good. */
export async function followOperation(
  client: ApiClient,
  operationId: string,
  o: FollowOptions,
): Promise<void> {
  let lastId = -1;
  let backoff = 250;
  const path = `/operations/${encodeURIComponent(operationId)}/events`;
  while (!o.signal.aborted) {
    o.onState?.(lastId < 0 ? "connecting" : "reconnecting");
    let completed = false;
    try {
      const headers = client.headers({ accept: "text/event-stream" });
      if (lastId >= 0) headers.set("last-event-id", String(lastId));
      const res = await fetch(client.url(path, { follow: 1 }), {
        headers,
        signal: o.signal,
        credentials: "omit",
        cache: "no-store",
      });
      if (!res.ok) {
        const body = await res.text();
        let message = `HTTP ${res.status}`;
        try {
          const j = JSON.parse(body) as { error?: unknown };
          if (typeof j.error === "string") message = j.error;
        } catch {
          // keep the status line
        }
        if (!RETRYABLE.has(res.status)) throw new ApiError(res.status, message);
      } else if (res.body !== null) {
        o.onState?.("live");
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const f of parser.push(value)) {
              const e = asEvent(f.data);
              if (e === undefined || e.id <= lastId) continue;
              lastId = e.id;
              backoff = 250;
              o.onEvent(e);
              if (e.type === "completion") completed = true;
            }
            if (completed) break;
          }
        } finally {
          await reader.cancel().catch(() => undefined);
        }
      }
    } catch (err) {
      if (o.signal.aborted) return;
      if (err instanceof ApiError) {
        o.onFatal?.(err.message);
        return;
      }
      // a dropped connection: reconnect below
    }
    if (completed) {
      o.onState?.("done");
      return;
    }
    if (o.signal.aborted) return;
    o.onState?.("reconnecting");
    await sleep(backoff, o.signal);
    backoff = Math.min(backoff * 2, 5000);
  }
}
