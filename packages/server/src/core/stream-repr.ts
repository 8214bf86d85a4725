import { invalidArgument } from "./errors.js";

/** ConTree's StreamRepr: printable ASCII stays text, anything else travels as base64. */
export interface StreamRepr {
  value: string;
  encoding: "ascii" | "base64";
  truncated?: boolean;
}

export function isPrintable(buf: Uint8Array): boolean {
  for (const b of buf) {
    if (!((b >= 32 && b <= 126) || b === 9 || b === 10 || b === 13)) return false;
  }
  return true;
}

export function toStreamRepr(buf: Uint8Array, truncated?: boolean): StreamRepr {
  const repr: StreamRepr = isPrintable(buf)
    ? { value: Buffer.from(buf).toString("latin1"), encoding: "ascii" }
    : { value: Buffer.from(buf).toString("base64"), encoding: "base64" };
  if (truncated !== undefined) repr.truncated = truncated;
  return repr;
}

export function decodeStreamInput(value: string, encoding: string | undefined, field: string): Buffer {
  const enc = encoding ?? "ascii";
  if (enc === "ascii" || enc === "utf-8" || enc === "utf8") return Buffer.from(value, "utf8");
  if (enc === "base64") {
    if (!/^[A-Za-z0-9+/=\s_-]*$/.test(value)) throw invalidArgument(`${field}: invalid base64`);
    return Buffer.from(value, "base64");
  }
  throw invalidArgument(`${field}: encoding must be "ascii" or "base64"`);
}
