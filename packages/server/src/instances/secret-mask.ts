import { Transform, type TransformCallback } from "node:stream";

export interface MaskedValue {
  name: string;
  bytes: Buffer;
}

/** The longest tail of `data` that is a proper prefix of some value (it may complete in the next chunk). */
function partialTail(data: Buffer, values: readonly MaskedValue[]): number {
  let best = 0;
  for (const v of values) {
    const max = Math.min(v.bytes.length - 1, data.length);
    for (let n = max; n > best; n--) {
      if (data.subarray(data.length - n).equals(v.bytes.subarray(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

/**
 * A process's output with every secret value it holds replaced by `<secret:NAME>` before
 * anything stores or shows it (events, the result, the output store). Only bytes that could
 * still become a value with the next read are held back, so ordinary output is not delayed;
 * what is held is let out at the end. A value split across reads is still found; a value the
 * process encodes (base64, reversed…) is not: output is masked for accidents, not against the
 * process, which holds the value in env mode anyway.
 */
export class SecretMask extends Transform {
  private held: Buffer = Buffer.alloc(0);

  constructor(private readonly values: readonly MaskedValue[]) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let data = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    data = this.replace(data);
    const keep = partialTail(data, this.values);
    this.held = Buffer.from(data.subarray(data.length - keep));
    if (data.length > keep) this.push(data.subarray(0, data.length - keep));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.held.length > 0) this.push(this.held);
    this.held = Buffer.alloc(0);
    done();
  }

  private replace(data: Buffer): Buffer {
    let out = data;
    for (const v of this.values) {
      if (out.indexOf(v.bytes) < 0) continue;
      const mask = Buffer.from(`<secret:${v.name}>`);
      const parts: Buffer[] = [];
      let from = 0;
      for (let at = out.indexOf(v.bytes); at >= 0; at = out.indexOf(v.bytes, from)) {
        parts.push(out.subarray(from, at), mask);
        from = at + v.bytes.length;
      }
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }
}
