// Server-Sent Events parser following the WHATWG "event stream interpretation" rules: lines end in CRLF,
// LF or CR; `:` starts a comment; `field: value` drops one leading space; data lines join with "\n"; an
// empty line dispatches. Written for chunked input where any boundary (even inside CRLF) may fall anywhere.

import { ProtocolError } from "./errors.js";

export interface SseFrame {
  /** The `id:` of this frame, if it had one. */
  id?: string;
  /** The `event:` type; "message" when absent. */
  event: string;
  data: string;
  /** `retry:` reconnection time in ms, if sent. */
  retry?: number;
}

export interface SseParserOptions {
  /** Called for every comment line (without the leading colon). */
  onComment?: (text: string) => void;
  /** Upper bound on one frame's buffered data; the server side promises 4 MiB. */
  maxFrameBytes?: number;
}

export interface SseStreamOptions extends SseParserOptions {
  /**
   * When the consumer stops early, first read on for up to this many ms in case the server is about to
   * end the stream. Read when the iteration ends, so a caller may set it once it knows the end is near.
   * A stream that ends by itself leaves the connection reusable; a cancelled one costs a new connection.
   */
  drainOnExitMs?: number;
}

export class SseParser {
  private buffer = "";
  private pendingCR = false;
  private started = false;
  private data: string[] = [];
  private dataSize = 0;
  private event = "";
  private id: string | undefined;
  private retry: number | undefined;
  private readonly maxFrameBytes: number;

  constructor(private readonly options: SseParserOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? 16 * 1024 * 1024;
  }

  /** Feeds decoded text; returns the frames completed by it. */
  push(text: string): SseFrame[] {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // A CR at the end of the previous chunk already ended a line; a LF right after it is the same line end.
    if (text.length === 0) return [];
    if (this.pendingCR) {
      this.pendingCR = false;
      if (text.startsWith("\n")) text = text.slice(1);
    }
    this.buffer += text;
    const frames: SseFrame[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buffer.slice(start, i), frames);
      if (c === 13) {
        if (i + 1 === this.buffer.length) this.pendingCR = true;
        else if (this.buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length + this.dataSize > this.maxFrameBytes) {
      throw new ProtocolError(`SSE frame larger than ${this.maxFrameBytes} bytes`);
    }
    return frames;
  }

  /** End of stream: a frame not terminated by an empty line is discarded, as the spec says. */
  end(): SseFrame[] {
    this.buffer = "";
    this.resetFrame();
    return [];
  }

  private line(line: string, frames: SseFrame[]): void {
    if (line === "") {
      this.dispatch(frames);
      return;
    }
    if (line.startsWith(":")) {
      this.options.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        this.dataSize += value.length + 1;
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(frames: SseFrame[]): void {
    const hasContent =
      this.data.length > 0 || this.id !== undefined || this.event !== "" || this.retry !== undefined;
    if (hasContent) {
      const frame: SseFrame = { event: this.event || "message", data: this.data.join("\n") };
      if (this.id !== undefined) frame.id = this.id;
      if (this.retry !== undefined) frame.retry = this.retry;
      frames.push(frame);
    }
    this.resetFrame();
  }

  private resetFrame(): void {
    this.data = [];
    this.dataSize = 0;
    this.event = "";
    this.id = undefined;
    this.retry = undefined;
  }
}

/** Parses a byte stream into frames. Cancelling the iteration cancels the underlying stream. */
export async function* parseSseStream(
  stream: ReadableStream<Uint8Array>,
  options: SseStreamOptions = {},
): AsyncGenerator<SseFrame, void, undefined> {
  const parser = new SseParser(options);
  const decoder = new TextDecoder("utf-8");
  const reader = stream.getReader();
  let done = false;
  try {
    while (true) {
      const chunk = await reader.read();
      if (chunk.done) break;
      yield* parser.push(decoder.decode(chunk.value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    parser.end();
    done = true;
  } finally {
    if (!done && !(await drain(reader, options.drainOnExitMs ?? 0))) {
      await reader.cancel().catch(() => undefined);
    }
    reader.releaseLock();
  }
}

/** Reads the rest of the stream for up to `ms`; true if it ended in time. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, ms: number): Promise<boolean> {
  if (ms <= 0) return false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  const rest = (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      // discarded
    }
    return true;
  })().catch(() => false);
  try {
    return await Promise.race([rest, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
