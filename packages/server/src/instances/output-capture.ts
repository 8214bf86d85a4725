import type { Readable } from "node:stream";
import { type StreamRepr, toStreamRepr } from "../core/stream-repr.js";

/** Largest single stdout/stderr event; bigger reads are split so frames stay small. */
const MAX_EVENT_BYTES = 64 * 1024;

export interface CaptureResult {
  repr: StreamRepr;
  emitted: number;
  dropped: number;
}

/**
 * Keeps the first `limit` bytes of a stream and streams them out as events; everything after
 * is read and dropped (so a process writing gigabytes never blocks nor grows server memory).
 */
export class OutputCapture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private dropped = 0;
  private chain: Promise<void> = Promise.resolve();
  readonly done: Promise<CaptureResult>;

  constructor(
    stream: Readable,
    private readonly limit: number,
    onChunk: (chunk: Buffer) => Promise<void>,
  ) {
    this.done = new Promise((resolve) => {
      stream.on("data", (data: Buffer) => {
        const room = this.limit - this.kept;
        if (room <= 0) {
          this.dropped += data.length;
          return;
        }
        const keep = data.length <= room ? data : data.subarray(0, room);
        this.dropped += data.length - keep.length;
        this.kept += keep.length;
        this.chunks.push(keep);
        for (let off = 0; off < keep.length; off += MAX_EVENT_BYTES) {
          const part = keep.subarray(off, off + MAX_EVENT_BYTES);
          this.chain = this.chain.then(() => onChunk(part)).catch(() => undefined);
        }
      });
      const finish = () => {
        void this.chain.then(() => {
          const all = Buffer.concat(this.chunks);
          resolve({ repr: toStreamRepr(all, this.dropped > 0), emitted: this.kept, dropped: this.dropped });
        });
      };
      stream.once("end", finish);
      stream.once("error", finish);
      stream.once("close", finish);
    });
  }
}
