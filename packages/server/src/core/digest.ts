import { createHash, type Hash } from "node:crypto";
import { invalidArgument } from "./errors.js";

/** A content digest, always `sha256:<64 lowercase hex>`. */
export type Digest = string & { readonly __brand: "Digest" };

const HEX64 = /^[0-9a-f]{64}$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function isSha256Hex(s: string): boolean {
  return HEX64.test(s);
}

export function parseDigest(s: string): Digest {
  if (!DIGEST_RE.test(s)) throw invalidArgument(`invalid digest: ${JSON.stringify(s.slice(0, 100))}`);
  return s as Digest;
}

export function digestFromHex(hex: string): Digest {
  if (!HEX64.test(hex)) throw invalidArgument("invalid sha256 digest: expected 64 lowercase hex characters");
  return `sha256:${hex}` as Digest;
}

export function hexOf(d: Digest): string {
  return d.slice("sha256:".length);
}

export function sha256(): Hash {
  return createHash("sha256");
}

export function sha256Of(data: string | Uint8Array): Digest {
  return `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;
}
