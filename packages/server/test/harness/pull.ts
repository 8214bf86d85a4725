/** Test helpers: drain a pulled image and check what a consumer must check (digests, diff_ids). */
import { createHash } from "node:crypto";
import { type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError } from "../../src/core/errors.js";
import { decompress } from "../../src/registry/decompress.js";
import type { Descriptor, ResolvedImage } from "../../src/registry/registry-client.js";

export interface PulledLayer {
  readonly descriptor: Descriptor;
  readonly bytes: number;
  /** sha256 of the uncompressed tar. */
  readonly diffId: string;
}

/** Streams every layer through its decompressor and returns the computed diff_ids. */
export async function drainLayers(
  image: ResolvedImage,
  open: (d: Descriptor) => Promise<Readable> | Readable,
): Promise<PulledLayer[]> {
  const out: PulledLayer[] = [];
  for (const d of image.manifest.layers) {
    const h = createHash("sha256");
    let bytes = 0;
    await pipeline(
      await open(d),
      decompress(d.mediaType),
      new Writable({
        write(c: Buffer, _e, cb) {
          h.update(c);
          bytes += c.length;
          cb();
        },
      }),
    );
    out.push({ descriptor: d, bytes, diffId: `sha256:${h.digest("hex")}` });
  }
  return out;
}

/** Reads a stream to the end and returns the byte count; rejects with the stream's error. */
export async function drain(stream: Readable): Promise<number> {
  let n = 0;
  for await (const c of stream) n += (c as Buffer).length;
  return n;
}

/** The AppError a promise rejects with (fails the test if it resolves or throws something else). */
export async function appErrorOf(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error("expected an AppError, but it succeeded");
}
