/** WWW-Authenticate parsing (RFC 7235 auth-params) and the realm sanity check for bearer tokens. */
import { unavailable } from "../core/errors.js";

interface Challenge {
  /** Lowercased scheme: "bearer", "basic", … */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses `Bearer realm="…",service="…",scope="…"` and `Basic realm="…"` (several challenges
 * may share one header). Unknown schemes are returned too; callers pick what they support.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  const s = header.slice(0, 8192);
  let i = 0;
  let current: { scheme: string; params: Record<string, string> } | undefined;
  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  while (i < s.length) {
    skipWs();
    if (s[i] === ",") {
      i++;
      continue;
    }
    const tok = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(s.slice(i))?.[0];
    if (tok === undefined) break;
    i += tok.length;
    skipWs();
    if (s[i] === "=" && current !== undefined) {
      i++;
      skipWs();
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const v = /^[^,\s]*/.exec(s.slice(i))?.[0] ?? "";
        value = v;
        i += v.length;
      }
      current.params[tok.toLowerCase()] = value;
    } else {
      current = { scheme: tok.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/**
 * The token realm must be http(s), and credentials must not travel over plain HTTP unless the
 * registry itself is spoken to over HTTP. Where the realm may point (not at loopback, private or
 * metadata addresses unless allowed) is decided when connecting, like every other destination.
 */
export function checkRealm(realm: string, registryUrl: URL): URL {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw unavailable(`registry ${registryUrl.host} sent an invalid token realm`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw unavailable(`registry ${registryUrl.host} sent a token realm that is not http(s)`);
  if (url.username !== "" || url.password !== "")
    throw unavailable(`registry ${registryUrl.host} sent a token realm with embedded credentials`);
  if (url.protocol === "http:" && registryUrl.protocol === "https:")
    throw unavailable(`registry ${registryUrl.host} sent a plain-http token realm for an https registry`);
  return url;
}
