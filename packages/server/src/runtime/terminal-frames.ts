/**
 * The stdin of a process with a terminal (ProcessSpec.tty) carries frames to the sandbox init
 * (native/init-tty.h): `TAG LEN(16-bit big-endian) PAYLOAD`, tag "D" bytes to type, "R" a
 * window size. Every byte of that pipe is the host's, so input can never pass for a resize.
 */
import { Writable } from "node:stream";
import { MAX_TERMINAL_DIM } from "./runtime-driver.js";

const MAX_PAYLOAD = 0xffff;

export function dataFrames(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += MAX_PAYLOAD) {
    const chunk = bytes.subarray(at, at + MAX_PAYLOAD);
    const head = Buffer.alloc(3);
    head[0] = 0x44; // "D"
    head.writeUInt16BE(chunk.length, 1);
    parts.push(head, chunk);
  }
  return Buffer.concat(parts);
}

export function resizeFrame(rows: number, cols: number): Buffer {
  const f = Buffer.alloc(7);
  f[0] = 0x52; // "R"
  f.writeUInt16BE(4, 1);
  f.writeUInt16BE(clampDim(rows), 3);
  f.writeUInt16BE(clampDim(cols), 5);
  return f;
}

function clampDim(n: number): number {
  return Math.min(MAX_TERMINAL_DIM, Math.max(1, Math.trunc(n)));
}

/**
 * The terminal's input side over the init's framed stdin: what is written to it is typed into
 * the terminal (in order with resizes), end() is the init's EOF. Backpressure is the pipe's.
 */
export class TerminalInput extends Writable {
  /** Chunks that are frames already (resizes), queued with the input to keep their order. */
  private readonly framed = new WeakSet<Buffer>();

  constructor(private readonly sink: Writable) {
    super();
    sink.on("error", (err) => this.destroy(err));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.sink.write(this.framed.has(chunk) ? chunk : dataFrames(chunk), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sink.end(cb);
  }

  /** Through the writable's own queue: a resize lands after the input written before it. */
  resize(rows: number, cols: number): void {
    if (this.writableEnded || this.destroyed) return;
    const frame = resizeFrame(rows, cols);
    this.framed.add(frame);
    this.write(frame);
  }
}
