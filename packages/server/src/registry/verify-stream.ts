/** A pass-through that checks size and sha256 of the bytes flowing through it. */
import { Transform, type TransformCallback } from "node:stream";
import { type Digest, sha256 } from "../core/digest.js";
import { dataLoss } from "../core/errors.js";

interface Expected {
  readonly digest: Digest;
  readonly size: number;
}

/**
 * Passes bytes through unchanged. Errors as soon as more than `size` bytes arrive (so a hostile
 * endless body is cut off), and at the end unless exactly `size` bytes with `digest` passed.
 * The error replaces 'end', so consumers never see a clean end for bad bytes.
 */
export class VerifyingStream extends Transform {
  readonly #expected: Expected;
  readonly #what: string;
  readonly #hash = sha256();
  #seen = 0;

  constructor(expected: Expected, what: string, initialBytes?: { hashed: Uint8Array[]; count: number }) {
    super();
    this.#expected = expected;
    this.#what = what;
    if (initialBytes) {
      for (const c of initialBytes.hashed) this.#hash.update(c);
      this.#seen = initialBytes.count;
    }
  }

  get bytesSeen(): number {
    return this.#seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#expected.size) {
      cb(dataLoss(`size mismatch for ${this.#what}: more than the expected ${this.#expected.size} bytes`));
      return;
    }
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#seen !== this.#expected.size) {
      cb(
        dataLoss(`size mismatch for ${this.#what}: got ${this.#seen} bytes, expected ${this.#expected.size}`),
      );
      return;
    }
    const got = `sha256:${this.#hash.digest("hex")}`;
    if (got !== this.#expected.digest) {
      cb(dataLoss(`digest mismatch for ${this.#what}: got ${got}`));
      return;
    }
    cb();
  }
}
