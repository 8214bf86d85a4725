/** What every request of one registry call shares: where, for which repository, as whom. */
import type { ImageReference } from "./reference.js";
import type { Credentials } from "./registry-client.js";

export interface Session {
  readonly ref: ImageReference;
  /** http(s)://host[:port]/ of the registry API. */
  readonly base: URL;
  /** The registry as the reference names it (for messages). */
  readonly host: string;
  readonly scope: string;
  readonly credentials: Credentials | undefined;
  /** Fingerprint of the credentials (keyed HMAC) or "anonymous": cache keys never hold secrets. */
  readonly credKey: string;
  readonly signal: AbortSignal | undefined;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
}
