/**
 * Signed, expiring URLs of an exposed port (`/v1/p/<operation>/<port>/<expires>/<sig>/…`): a
 * bearer of the URL may reach that port of that operation until `expires` (Unix seconds), with
 * no token. The signature is an HMAC-SHA256 over "operation\nport\nexpires" with a server key,
 * base64url; it is checked in constant time. Revocation: rotating the key revokes every URL.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { invalidArgument } from "../core/errors.js";

const KEY_FILE = "port-url.key";
const SIG_RE = /^[A-Za-z0-9_-]{43}$/;

export class PortUrlSigner {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw invalidArgument("the port URL key must hold at least 32 bytes");
  }

  sign(operationId: string, port: number, expiresAt: number): string {
    return createHmac("sha256", this.key).update(`${operationId}\n${port}\n${expiresAt}`).digest("base64url");
  }

  /** Whether `sig` is the signature of these fields and `expiresAt` (seconds) is still ahead of `now` (ms). */
  verify(operationId: string, port: number, expiresAt: number, sig: string, now = Date.now()): boolean {
    if (!SIG_RE.test(sig) || !Number.isSafeInteger(expiresAt)) return false;
    const want = Buffer.from(this.sign(operationId, port, expiresAt), "base64url");
    const got = Buffer.from(sig, "base64url");
    const same = got.length === want.length && timingSafeEqual(got, want);
    return same && expiresAt * 1000 > now;
  }
}

/**
 * The signer over the configured key (hex or base64 text, ≥ 32 bytes), else over the key kept
 * in the data dir, generated there (mode 0600) on first use.
 */
export function loadPortUrlSigner(dataDir: string, configured: string | undefined): PortUrlSigner {
  if (configured !== undefined) {
    const key = /^[0-9a-fA-F]{64,}$/.test(configured)
      ? Buffer.from(configured, "hex")
      : Buffer.from(configured, "base64");
    return new PortUrlSigner(key);
  }
  const file = path.join(dataDir, KEY_FILE);
  try {
    return new PortUrlSigner(readFileSync(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  try {
    writeFileSync(file, key, { mode: 0o600, flag: "wx" });
  } catch (e) {
    // Another process wrote it first: use theirs.
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return new PortUrlSigner(readFileSync(file));
    throw e;
  }
  chmodSync(file, 0o600);
  return new PortUrlSigner(key);
}
