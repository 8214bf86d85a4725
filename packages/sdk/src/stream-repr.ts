// StreamRepr carries process output and stdin either as plain ASCII or as base64 of raw bytes
// (contree-api.md 3.3). Only platform globals are used (atob/btoa/TextEncoder), so this runs anywhere.

import { ProtocolError } from "./errors.js";
import type { ClosableStreamRepr, StreamRepr } from "./types.js";

const encoder = new TextEncoder();

export function decodeStreamRepr(
  repr: Pick<StreamRepr, "value" | "encoding"> | null | undefined,
): Uint8Array {
  if (!repr || repr.value === "") return new Uint8Array(0);
  if (repr.encoding === "base64") return base64ToBytes(repr.value);
  // "ascii" (or a missing encoding): be lenient and take the text as UTF-8 should a server send non-ASCII.
  return encoder.encode(repr.value);
}

/** Decodes to text, replacing invalid UTF-8 with U+FFFD, as the official readers do. */
export function streamReprToText(repr: Pick<StreamRepr, "value" | "encoding"> | null | undefined): string {
  if (!repr) return "";
  if (repr.encoding !== "base64") return repr.value;
  return new TextDecoder("utf-8").decode(base64ToBytes(repr.value));
}

function isPlainAscii(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (!((b >= 32 && b <= 126) || b === 9 || b === 10 || b === 13)) return false;
  }
  return true;
}

/** Same rule as the official clients: ascii when every byte is printable ASCII or TAB/LF/CR, else base64. */
export function encodeStreamRepr(data: string | Uint8Array): StreamRepr {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  if (isPlainAscii(bytes)) {
    return { value: typeof data === "string" ? data : new TextDecoder().decode(bytes), encoding: "ascii" };
  }
  return { value: bytesToBase64(bytes), encoding: "base64" };
}

export function closableStreamRepr(data: string | Uint8Array, close: boolean): ClosableStreamRepr {
  const { value, encoding } = encodeStreamRepr(data);
  return { value, encoding, close };
}

export function base64ToBytes(b64: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(b64);
  } catch (cause) {
    throw new ProtocolError("invalid base64 in stream", { cause });
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let bin = "";
  const step = 0x8000; // keeps the spread below engines' argument limits
  for (let i = 0; i < bytes.length; i += step) {
    bin += String.fromCharCode(...bytes.subarray(i, i + step));
  }
  return btoa(bin);
}

/**
 * Turns a sequence of StreamRepr chunks into text without breaking multi-byte characters that straddle
 * chunk boundaries (base64 chunks split bytes, not characters).
 */
export class StreamReprTextDecoder {
  private readonly decoder = new TextDecoder("utf-8");

  push(repr: Pick<StreamRepr, "value" | "encoding">): string {
    return this.decoder.decode(decodeStreamRepr(repr), { stream: true });
  }

  flush(): string {
    return this.decoder.decode();
  }
}
