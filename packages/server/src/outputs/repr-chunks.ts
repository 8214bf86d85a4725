import { StringDecoder } from "node:string_decoder";
import { dataLoss, invalidArgument } from "../core/errors.js";
import { type StreamRepr, toStreamRepr } from "../core/stream-repr.js";
import type { OutputRef } from "./output-ref.js";
import type { OutputReader, OutputStore } from "./output-store.js";

/** Bytes read and encoded per step: a multiple of 3, so base64 pieces concatenate cleanly. */
const REPR_CHUNK_BYTES = 48 * 1024;
/** An event's payload is at most one capture chunk; anything bigger is not one of ours. */
const MAX_EVENT_REF_BYTES = 1024 * 1024;

/**
 * The JSON text of a result StreamRepr (`{"value":…,"encoding":…,"truncated":…}`, the key order
 * of `toStreamRepr`) whose value is read from the store and encoded a bounded chunk at a time.
 */
export async function* reprJson(
  store: OutputStore,
  operationId: string,
  ref: OutputRef,
  chunkBytes = REPR_CHUNK_BYTES,
): AsyncGenerator<string> {
  const encoding = ref.encoding ?? "base64";
  yield '{"value":"';
  let carry = Buffer.alloc(0);
  let read = 0;
  // "ascii" output is printable ASCII; a spawn's "ascii" stdin is any UTF-8 text (split safely).
  const text = new StringDecoder("utf8");
  for await (const chunk of store.read(operationId, ref.$out, chunkBytes)) {
    read += chunk.length;
    if (encoding === "ascii") {
      yield JSON.stringify(text.write(chunk)).slice(1, -1);
      continue;
    }
    // Reads may come back short: only whole 3-byte groups are encoded before the end.
    const bytes = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const whole = bytes.length - (bytes.length % 3);
    carry = Buffer.from(bytes.subarray(whole));
    if (whole > 0) yield bytes.subarray(0, whole).toString("base64");
  }
  if (encoding === "ascii") yield JSON.stringify(text.end()).slice(1, -1);
  if (carry.length > 0) yield carry.toString("base64");
  yield `","encoding":"${encoding}"`;
  // A stream shorter than its reference (damaged by a crash) is not the complete value.
  const short = read < ref.$out.length;
  if (ref.truncated !== undefined || short)
    yield `,"truncated":${ref.truncated === true || short ? "true" : "false"}`;
  if (ref.close !== undefined) yield `,"close":${ref.close ? "true" : "false"}`;
  yield "}";
}

/** All bytes a reference names (callers bound `length`: a spawn's stdin, at most the body limit). */
export async function readRange(store: OutputStore, operationId: string, ref: OutputRef): Promise<Buffer> {
  const parts: Buffer[] = [];
  let read = 0;
  for await (const c of store.read(operationId, ref.$out, REPR_CHUNK_BYTES * 16)) {
    parts.push(c);
    read += c.length;
  }
  // Never hand on part of the bytes as if they were all (a stream damaged by a crash).
  if (read < ref.$out.length) throw dataLoss("stored input is incomplete");
  return Buffer.concat(parts);
}

/** An event's chunk as the StreamRepr it was captured as (one capture chunk, so small). */
export async function chunkRepr(reader: OutputReader, ref: OutputRef): Promise<StreamRepr> {
  if (ref.$out.length > MAX_EVENT_REF_BYTES) throw invalidArgument("output reference too large for an event");
  const parts: Buffer[] = [];
  for await (const c of reader.read(ref.$out, ref.$out.length)) parts.push(c);
  return toStreamRepr(Buffer.concat(parts));
}
