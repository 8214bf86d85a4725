import type { Readable } from "node:stream";
import { isPrintable, type StreamRepr, toStreamRepr } from "../core/stream-repr.js";
import type { OutputRef } from "../outputs/output-ref.js";
import type { OutputFile } from "../outputs/output-store.js";

/** Largest single stdout/stderr (or stdin echo) event; bigger reads are split so frames stay small. */
export const MAX_EVENT_BYTES = 64 * 1024;
/**
 * Output up to this size per stream stays inline in the metadata database (events and result),
 * as small outputs are the common case (MCP caps at 8000 bytes, the CLI at 64 KiB). Past it the
 * whole stream goes to the output store and the database keeps references only.
 */
export const INLINE_OUTPUT_MAX = 64 * 1024;
/** Unflushed bytes above which the pipe is paused (the process then blocks on write). */
const PAUSE_BYTES = 1024 * 1024;

export interface CaptureResult {
  /** Inline StreamRepr, or a reference to the stored stream. */
  repr: StreamRepr | OutputRef;
  emitted: number;
  dropped: number;
}

/** Where a stream spills once it outgrows the inline size: its name and its file, created on first use. */
interface OutputSpill {
  name: string;
  create(): Promise<OutputFile>;
}

/**
 * Keeps the first `limit` bytes of a stream and streams them out as events; everything after is
 * read and dropped (so a process writing gigabytes never blocks nor grows server memory). Reads
 * that arrive while an event is being stored are joined into the next one (up to 64 KiB), so a
 * process writing a byte at a time cannot make one event per byte. A stream larger than
 * INLINE_OUTPUT_MAX is written to the output store: each byte range is written before the event
 * that refers to it, and the file is made durable before the result refers to it.
 */
export class OutputCapture {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inline: Buffer[] = [];
  private inlineBytes = 0;
  private file: OutputFile | null = null;
  private failed = false;
  private printable = true;
  private kept = 0;
  private dropped = 0;
  private flushing: Promise<void> | null = null;
  readonly done: Promise<CaptureResult>;

  constructor(
    private readonly stream: Readable,
    private readonly limit: number,
    private readonly spill: OutputSpill,
    private readonly onChunk: (data: Record<string, unknown>) => Promise<void>,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    this.done = new Promise((resolve) => {
      stream.on("data", (data: Buffer) => {
        const room = this.limit - this.kept;
        if (room <= 0 || this.failed) {
          this.dropped += data.length;
          return;
        }
        const keep = data.length <= room ? data : data.subarray(0, room);
        this.dropped += data.length - keep.length;
        this.kept += keep.length;
        this.pending.push(keep);
        this.pendingBytes += keep.length;
        if (this.pendingBytes > PAUSE_BYTES) stream.pause();
        this.flushing ??= this.flush();
      });
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        void (async () => {
          while (this.flushing) await this.flushing;
          resolve(await this.result());
        })();
      };
      stream.once("end", finish);
      stream.once("error", finish);
      stream.once("close", finish);
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pendingBytes > 0) {
        const part = this.take(MAX_EVENT_BYTES);
        if (this.pendingBytes <= PAUSE_BYTES && this.stream.isPaused()) this.stream.resume();
        await this.store(part);
      }
    } finally {
      this.flushing = null;
    }
  }

  /** Up to `max` bytes from the head of `pending` (only those are copied, never the whole backlog). */
  private take(max: number): Buffer {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < max && this.pending.length > 0) {
      const head = this.pending[0] as Buffer;
      const want = max - n;
      if (head.length <= want) {
        parts.push(head);
        this.pending.shift();
        n += head.length;
      } else {
        parts.push(head.subarray(0, want));
        this.pending[0] = head.subarray(want);
        n += want;
      }
    }
    this.pendingBytes -= n;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
  }

  /** One chunk: inline while the stream is small, else appended to the file before its event. */
  private async store(part: Buffer): Promise<void> {
    if (this.failed) {
      this.dropped += part.length;
      this.kept -= part.length;
      return;
    }
    this.printable &&= isPrintable(part);
    if (this.file === null && this.inlineBytes + part.length <= INLINE_OUTPUT_MAX) {
      this.inline.push(part);
      this.inlineBytes += part.length;
      await this.emit({ ...toStreamRepr(part) });
      return;
    }
    let offset: number;
    try {
      if (this.file === null) {
        // The file counts only once it holds the inline part: if that fails, the inline bytes
        // stay the (truncated) result instead of a reference to an empty file.
        const file = await this.spill.create();
        try {
          await file.append(Buffer.concat(this.inline));
        } catch (err) {
          await file.seal().catch(() => undefined);
          throw err;
        }
        this.file = file;
        this.inline = [];
      }
      offset = this.file.size;
      await this.file.append(part);
    } catch (err) {
      // The disk refused (full?): what was stored stays, the rest counts as dropped.
      this.failed = true;
      this.onError(err);
      this.dropped += part.length;
      this.kept -= part.length;
      return;
    }
    await this.emit({ $out: { stream: this.spill.name, offset, length: part.length } });
  }

  private async emit(data: Record<string, unknown>): Promise<void> {
    await this.onChunk(data).catch(() => undefined);
  }

  private async result(): Promise<CaptureResult> {
    if (this.file === null) {
      const all = Buffer.concat(this.inline);
      this.inline = [];
      return { repr: toStreamRepr(all, this.dropped > 0), emitted: this.kept, dropped: this.dropped };
    }
    const length = this.file.size;
    let sealed = true;
    await this.file.seal().catch((err: unknown) => {
      sealed = false;
      this.onError(err);
    });
    const repr: OutputRef = {
      $out: { stream: this.spill.name, offset: 0, length: sealed ? length : 0 },
      encoding: this.printable ? "ascii" : "base64",
      truncated: this.dropped > 0 || !sealed,
    };
    return { repr, emitted: this.kept, dropped: this.dropped };
  }
}
