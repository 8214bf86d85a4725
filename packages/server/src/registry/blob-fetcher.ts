/**
 * The fetcher: a blob as a verified stream (size and sha256 checked as the bytes pass; a
 * mismatch errors the stream instead of ending it), resumed with Range after a broken
 * connection, with an idle timeout between chunks.
 */
import { Readable } from "node:stream";
import type { Response } from "undici";
import { type Digest, parseDigest } from "../core/digest.js";
import { AppError, deadlineExceeded, invalidArgument, unavailable } from "../core/errors.js";
import { AttemptFailed, readWithIdleTimeout } from "./http-body.js";
import type { ImageReference } from "./reference.js";
import type { Descriptor, FetchBlobOptions } from "./registry-client.js";
import type { Session } from "./registry-session.js";
import type { RegistryTransport } from "./registry-transport.js";
import { throwIfCallerAborted } from "./retry.js";
import { VerifyingStream } from "./verify-stream.js";

export class BlobFetcher {
  constructor(private readonly transport: RegistryTransport) {}

  async fetch(
    ref: ImageReference,
    descriptor: Descriptor,
    options: FetchBlobOptions = {},
  ): Promise<Readable> {
    const digest = parseDigest(descriptor.digest);
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0)
      throw invalidArgument("invalid blob size");
    const s = this.transport.session(ref, options.credentials, options.signal);
    const own = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, own.signal]) : own.signal;
    const sess: Session = { ...s, signal };
    const first = await this.transport.send(sess, `blobs/${digest}`, {}, `blob ${digest}`);
    const verifier = new VerifyingStream({ digest, size: descriptor.size }, `blob ${digest}`);
    const source = Readable.from(this.#chunks(sess, digest, descriptor.size, first), {
      objectMode: false,
    });
    source.on("error", (err) => verifier.destroy(err));
    verifier.on("close", () => {
      own.abort();
      source.destroy();
    });
    source.pipe(verifier);
    return verifier;
  }

  async *#chunks(s: Session, digest: Digest, size: number, first: Response): AsyncGenerator<Buffer> {
    let got = 0;
    let res: Response | undefined = first;
    const budget = this.transport.retries(s.signal);
    for (;;) {
      if (res === undefined) {
        const range = got > 0 ? { range: `bytes=${got}-` } : {};
        res = await this.transport.send(s, `blobs/${digest}`, range, `blob ${digest}`);
        if (got > 0 && res.status === 206) {
          const start = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1];
          if (Number(start) !== got) {
            await res.body?.cancel().catch(() => {});
            throw unavailable(`registry ${s.host} answered a resume request with the wrong range`);
          }
        }
      }
      // A 200 to a Range request is the whole blob again: skip what we already have.
      let skip = got > 0 && res.status === 200 ? got : 0;
      const body = res.body;
      res = undefined;
      if (body === null) throw unavailable(`registry ${s.host} sent no body for blob ${digest}`);
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await readWithIdleTimeout(reader, this.transport.idleTimeoutMs, s.signal);
          if (done) return;
          let chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            skip -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          got += chunk.length;
          if (got > size) {
            yield chunk; // the verifier reports the size mismatch
            return;
          }
          yield chunk;
        }
      } catch (err) {
        throwIfCallerAborted(s.signal, err);
        if (err instanceof AppError) throw err;
        await budget.failed(() =>
          err instanceof AttemptFailed && err.reason === "timeout"
            ? deadlineExceeded(`registry ${s.host} stalled while sending blob ${digest}`, { cause: err })
            : unavailable(`connection to registry ${s.host} lost while downloading blob ${digest}`, {
                cause: err,
              }),
        );
      } finally {
        // Cancelling closes the connection (a no-op once the body is fully read).
        reader.cancel().catch(() => {});
      }
    }
  }
}
