/**
 * How the metadata database points at output kept in the {@link OutputStore}. Event payloads and
 * `metadata.result.stdout|stderr` hold either an inline StreamRepr (small output) or this shape.
 * Only the server writes these documents, so the `$out` key cannot come from a client.
 */
export interface OutputRef {
  $out: { stream: string; offset: number; length: number };
  /** Set on results (decided over the whole stream while capturing); events pick per chunk. */
  encoding?: "ascii" | "base64";
  truncated?: boolean;
  /** Set on a spawn's stored `stdin` (ClosableStreamRepr). */
  close?: boolean;
}

/**
 * The only stream names a store accepts: `<spid>.stdout|stderr` (captured output), `<spid>.stdin`
 * (input written to a running process), `1.input` (a spawn request's stdin).
 */
export const STREAM_NAME = /^[1-9]\d{0,8}\.(stdout|stderr|stdin|input)$/;

export function isOutputRef(v: unknown): v is OutputRef {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const o = (v as { $out?: unknown }).$out;
  if (typeof o !== "object" || o === null) return false;
  const r = o as Record<string, unknown>;
  return (
    typeof r["stream"] === "string" &&
    STREAM_NAME.test(r["stream"]) &&
    Number.isSafeInteger(r["offset"]) &&
    Number.isSafeInteger(r["length"])
  );
}

/** Whether a JSON document holds an output reference anywhere (it then has to be streamed). */
export function containsOutputRef(v: unknown, depth = 0): boolean {
  if (depth > 8 || typeof v !== "object" || v === null) return false;
  if (isOutputRef(v)) return true;
  const values = Array.isArray(v) ? v : Object.values(v);
  return values.some((x) => containsOutputRef(x, depth + 1));
}
