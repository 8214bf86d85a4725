import { containsOutputRef, isOutputRef, type OutputRef } from "./output-ref.js";

/** Pieces smaller than this are joined before they are handed on (fewer, larger writes). */
const PIECE_BYTES = 32 * 1024;

/**
 * JSON text of a document, produced incrementally: each output reference in it is replaced by
 * whatever `expand` yields for it (a StreamRepr read from the output store chunk by chunk).
 * Subtrees without references are serialised with JSON.stringify, so the text equals what
 * JSON.stringify would give for the same document with the references resolved.
 */
export async function* jsonStream(
  doc: unknown,
  expand: (ref: OutputRef) => AsyncIterable<string>,
): AsyncGenerator<string> {
  let pending = "";
  for await (const piece of walk(doc, expand)) {
    pending += piece;
    if (pending.length >= PIECE_BYTES) {
      yield pending;
      pending = "";
    }
  }
  if (pending !== "") yield pending;
}

async function* walk(v: unknown, expand: (ref: OutputRef) => AsyncIterable<string>): AsyncGenerator<string> {
  if (isOutputRef(v)) {
    yield* expand(v);
    return;
  }
  if (!containsOutputRef(v)) {
    yield JSON.stringify(v) ?? "null";
    return;
  }
  if (Array.isArray(v)) {
    yield "[";
    for (let i = 0; i < v.length; i++) {
      if (i > 0) yield ",";
      const item: unknown = v[i];
      if (item === undefined || typeof item === "function") yield "null";
      else yield* walk(item, expand);
    }
    yield "]";
    return;
  }
  yield "{";
  let first = true;
  for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
    if (item === undefined || typeof item === "function") continue;
    yield `${first ? "" : ","}${JSON.stringify(k)}:`;
    first = false;
    yield* walk(item, expand);
  }
  yield "}";
}
