import { toStreamRepr } from "../core/stream-repr.js";
import type { OutputRef } from "../outputs/output-ref.js";
import type { OutputFile } from "../outputs/output-store.js";
import { INLINE_OUTPUT_MAX, MAX_EVENT_BYTES } from "./output-capture.js";

/** Event payloads for `length` stored bytes from `offset`: one reference per 64 KiB. */
export function chunkRefs(stream: string, offset: number, length: number): OutputRef[] {
  const refs: OutputRef[] = [];
  for (let at = 0; at < length; at += MAX_EVENT_BYTES)
    refs.push({ $out: { stream, offset: offset + at, length: Math.min(MAX_EVENT_BYTES, length - at) } });
  return refs;
}

/**
 * The `stdin` echo events of one process: a small write is echoed inline, a large one (up to the
 * request body limit) is appended to the process's `<spid>.stdin` stream and echoed as
 * references, so the metadata database never holds megabytes of input.
 */
export class StdinLog {
  private file: OutputFile | null = null;
  /** Once closed the stream is never created again (that would truncate what events refer to). */
  private closed = false;
  /** Writes of one process may overlap (two POSTs): stored ones go one after another. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly name: string,
    private readonly create: () => Promise<OutputFile>,
  ) {}

  record(bytes: Buffer): Promise<Array<Record<string, unknown>>> {
    if (bytes.length <= INLINE_OUTPUT_MAX || this.closed)
      return Promise.resolve([{ ...toStreamRepr(bytes) }]);
    const next = this.chain.then(async () => {
      if (this.closed) return [{ ...toStreamRepr(bytes) }];
      this.file ??= await this.create();
      const offset = this.file.size;
      await this.file.append(bytes);
      return chunkRefs(this.name, offset, bytes.length).map((r) => ({ ...r }));
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Makes the stream durable and closes it (after the process's last write). */
  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    const f = this.file;
    this.file = null;
    await f?.seal();
  }
}
