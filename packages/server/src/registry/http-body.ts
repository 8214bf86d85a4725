/** Reading registry response bodies: bounded, with an idle timeout, and the error codes of a failure. */
import type { ReadableStreamDefaultReader, ReadableStreamReadResult } from "node:stream/web";
import type { Response } from "undici";
import { AppError, unavailable, unprocessable } from "../core/errors.js";
import { throwIfCallerAborted } from "./retry.js";

/** Network-level failure of one attempt (no usable HTTP response, or a body that stalled). */
export class AttemptFailed extends Error {
  constructor(
    readonly reason: "timeout" | "network",
    detail: string,
    cause?: unknown,
  ) {
    super(detail, { cause });
  }
}

export function networkDetail(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === "string") return cause.code;
  return "network error";
}

export async function drain(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}

export async function readBounded(
  res: Response,
  max: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const len = res.headers.get("content-length");
  if (len !== null && Number(len) > max) {
    await drain(res);
    throw unprocessable(`${what} is larger than ${max} bytes`);
  }
  if (res.body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const c of res.body) {
      total += c.byteLength;
      if (total > max) {
        throw unprocessable(`${what} is larger than ${max} bytes`);
      }
      chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
  } catch (err) {
    throwIfCallerAborted(signal, err);
    if (err instanceof AppError) throw err;
    throw unavailable(`connection lost while reading ${what}`, { cause: err });
  }
  return Buffer.concat(chunks, total);
}

/** The next chunk, or AttemptFailed("timeout") when none comes within `idleMs`. */
export async function readWithIdleTimeout(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleMs: number,
  signal: AbortSignal | undefined,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AttemptFailed("timeout", "idle timeout")), idleMs);
  });
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    if (!signal) return;
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([reader.read(), idle, aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** Up to three `errors[].code` values of a distribution API error body (never its messages). */
export async function registryErrorCodes(res: Response, signal: AbortSignal | undefined): Promise<string[]> {
  try {
    const body = await readBounded(res, 64 * 1024, "error body", signal);
    const doc = JSON.parse(body.toString("utf8")) as unknown;
    if (typeof doc !== "object" || doc === null) return [];
    const errors = (doc as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) return [];
    return errors
      .map((e) => (typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined))
      .filter((c): c is string => typeof c === "string" && /^[A-Z_]{1,40}$/.test(c))
      .slice(0, 3);
  } catch {
    return [];
  }
}
