/**
 * A raw event-stream reader over node:http (one connection per stream, no agent), so tests can
 * pause the socket, see every byte and comment, decode gzip incrementally, and time arrivals.
 * Every frame is checked against the frame contract (contracts/sse-frames.ts).
 */
import { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, request } from "node:http";
import { createGunzip } from "node:zlib";
import type { OperationEventT } from "../contracts/client-models.js";
import { SseFrameParser, type SseItem } from "../contracts/sse-frames.js";

export interface EventsQuery {
  follow?: boolean;
  since?: number | string;
  spid?: number;
  lastEventId?: number | string;
  gzip?: boolean;
  /** Raw extra query text (e.g. "follow=&since=3"). */
  raw?: string;
}

export interface TimedItem {
  item: SseItem;
  at: number;
}

export class SseStream {
  readonly items: TimedItem[] = [];
  readonly parser = new SseFrameParser();
  status = 0;
  headers: IncomingHttpHeaders = {};
  /** Bytes received on the wire (compressed when gzip). */
  wireBytes = 0;
  ended = false;
  error: Error | undefined;
  private waiters: Array<() => void> = [];
  private res: IncomingMessage | undefined;

  constructor(private readonly req: ClientRequest) {}

  attach(res: IncomingMessage): void {
    this.res = res;
    this.status = res.statusCode ?? 0;
    this.headers = res.headers;
    res.on("data", (c: Buffer) => {
      this.wireBytes += c.length;
    });
    const gunzip =
      res.headers["content-encoding"] === "gzip"
        ? createGunzip({ finishFlush: 2 /* Z_SYNC_FLUSH: tolerate a cut stream */ })
        : undefined;
    const body = gunzip ? res.pipe(gunzip) : res;
    const dec = new TextDecoder();
    body.on("data", (c: Buffer) => {
      const at = Date.now();
      for (const item of this.parser.push(dec.decode(c, { stream: true }))) this.items.push({ item, at });
      this.wake();
    });
    const done = (err?: Error) => {
      if (this.ended) return;
      this.ended = true;
      if (err) this.error = err;
      this.wake();
    };
    body.on("end", () => done());
    body.on("error", (e: Error) => done(e));
    res.on("error", (e: Error) => done(e));
    if (!gunzip) res.on("close", () => setImmediate(() => done()));
    else {
      // gunzip runs on the thread pool: the last frames may still be inflating when the socket
      // closes, so the stream is over only when the decompressor has ended (a cut stream is ended
      // here, and Z_SYNC_FLUSH lets it give out what it has).
      res.on("close", () => {
        if (!gunzip.writableEnded) gunzip.end();
      });
      gunzip.on("close", () => done());
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  events(): OperationEventT[] {
    return this.items.flatMap((i) => (i.item.kind === "event" ? [i.item.event] : []));
  }

  comments(): string[] {
    return this.items.flatMap((i) => (i.item.kind === "comment" ? [i.item.text] : []));
  }

  /** Waits until `pred` holds over what was received (or the stream ends / times out). */
  async until(pred: (s: SseStream) => boolean, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      if (this.ended)
        throw new Error(
          `stream ended before the condition held (${this.events().length} events${this.error ? `, ${this.error.message}` : ""})`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting on the stream (${this.events().length} events)`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  /** Resolves when the server ends the stream; returns every event. */
  async done(timeoutMs = 180_000): Promise<OperationEventT[]> {
    await this.until((s) => s.ended, timeoutMs).catch((e: unknown) => {
      if (!this.ended) throw e;
    });
    if (this.error) throw this.error;
    return this.events();
  }

  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  close(): void {
    this.req.destroy();
  }
}

/** Opens `GET /v1/operations/{id}/events` and resolves once the response headers arrived. */
export function openEvents(
  base: { url: string; token: string; prefix?: string },
  opId: string,
  q: EventsQuery = {},
): Promise<SseStream> {
  const params = new URLSearchParams();
  if (q.follow) params.set("follow", "1");
  if (q.since !== undefined) params.set("since", String(q.since));
  if (q.spid !== undefined) params.set("spid", String(q.spid));
  let query = params.toString();
  if (q.raw) query = query ? `${query}&${q.raw}` : q.raw;
  const u = new URL(
    `${base.url}${base.prefix ?? ""}/v1/operations/${opId}/events${query ? `?${query}` : ""}`,
  );
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname,
      port: u.port,
      path: `${u.pathname}${u.search}`,
      agent: false,
      headers: {
        authorization: `Bearer ${base.token}`,
        accept: "text/event-stream",
        "accept-encoding": q.gzip ? "gzip" : "identity",
        ...(q.lastEventId !== undefined ? { "last-event-id": String(q.lastEventId) } : {}),
      },
    });
    const s = new SseStream(req);
    req.on("response", (res) => {
      s.attach(res);
      resolve(s);
    });
    req.on("error", reject);
    req.end();
  });
}

export const decodeRepr = (d: Record<string, unknown>): Buffer =>
  Buffer.from(String(d["value"]), d["encoding"] === "base64" ? "base64" : "utf8");

/** Concatenated output of a stream type (stdout/stderr) of one spid. */
export function outputOf(events: OperationEventT[], type: "stdout" | "stderr", spid = 1): string {
  return Buffer.concat(
    events.filter((e) => e.type === type && e.spid === spid).map((e) => decodeRepr(e.data)),
  ).toString();
}
