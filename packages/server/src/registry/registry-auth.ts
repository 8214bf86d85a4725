/**
 * Registry authentication: answers a 401's challenge (bearer token from the realm, or Basic with
 * the caller's credentials) and remembers the answer per (registry, scope, credential
 * fingerprint). Only short-lived tokens and the fact "Basic works here" are cached, never the
 * credentials themselves.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { Response } from "undici";
import { AppError, unauthenticated, unavailable } from "../core/errors.js";
import { checkRealm, parseWwwAuthenticate } from "./auth-challenge.js";
import { drain, readBounded } from "./http-body.js";
import { parseJsonObject } from "./manifest.js";
import type { Credentials } from "./registry-client.js";
import { basicHeader, type Session } from "./registry-session.js";
import {
  parseRetryAfter,
  RETRY_STATUS,
  type RetryBudget,
  throwIfCallerAborted,
  unreachable,
} from "./retry.js";

const MAX_TOKEN_CACHE = 256;

interface CachedAuth {
  readonly header: string | "basic";
  readonly expiresAt: number;
}

/** The transport's redirect-following GET (destination policy, timeouts) and its retry budget. */
interface AuthTransport {
  fetchFollowing(
    url: URL,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<Response>;
  retries(signal: AbortSignal | undefined): RetryBudget;
  readonly maxRetryAfterMs: number;
  readonly userAgent: string;
}

export class RegistryAuth {
  /** Bearer tokens per (host, scope, credential fingerprint); never the credentials themselves. */
  readonly #cache = new Map<string, CachedAuth>();
  readonly #credSecret = randomBytes(32);

  constructor(private readonly transport: AuthTransport) {}

  credentialKey(creds: Credentials | undefined): string {
    return creds
      ? createHmac("sha256", this.#credSecret)
          .update(`${creds.username}\u0000${creds.password}`)
          .digest("hex")
      : "anonymous";
  }

  /** The Authorization header a request of this session carries now, if any. */
  header(s: Session): string | undefined {
    const key = cacheKey(s);
    const hit = this.#cache.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= Date.now()) {
      this.#cache.delete(key);
      return undefined;
    }
    if (hit.header === "basic") return s.credentials ? basicHeader(s.credentials) : undefined;
    return hit.header;
  }

  /** Answers a WWW-Authenticate challenge; the next `header(s)` carries the result. */
  async authenticate(s: Session, challengeHeader: string): Promise<void> {
    const challenges = parseWwwAuthenticate(challengeHeader);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const key = cacheKey(s);
    if (bearer) {
      const realm = bearer.params["realm"];
      if (!realm) throw unavailable(`registry ${s.host} sent a bearer challenge without a realm`);
      const url = checkRealm(realm, s.base);
      if (bearer.params["service"]) url.searchParams.set("service", bearer.params["service"]);
      url.searchParams.set("scope", s.scope);
      const token = await this.#fetchToken(s, url);
      this.#remember(key, { header: `Bearer ${token.token}`, expiresAt: Date.now() + token.ttlMs });
      return;
    }
    if (basic) {
      if (!s.credentials)
        throw unauthenticated(
          `unauthorized: registry ${s.host} requires credentials for ${s.ref.repository}`,
        );
      this.#remember(key, { header: "basic", expiresAt: Date.now() + 300_000 });
      return;
    }
    throw unauthenticated(`unauthorized: registry ${s.host} requires an unsupported authentication scheme`);
  }

  async #fetchToken(s: Session, url: URL): Promise<{ token: string; ttlMs: number }> {
    const t = this.transport;
    const headers: Record<string, string> = { "user-agent": t.userAgent, accept: "application/json" };
    if (s.credentials) headers["authorization"] = basicHeader(s.credentials);
    const budget = t.retries(s.signal);
    for (;;) {
      let res: Response;
      try {
        // Redirects are followed, but the Basic credentials never leave the realm's origin.
        res = await t.fetchFollowing(url, headers, s.signal);
      } catch (err) {
        throwIfCallerAborted(s.signal, err);
        if (err instanceof AppError) throw err;
        await budget.failed(() => unreachable(err));
        continue;
      }
      if (RETRY_STATUS.has(res.status) && !budget.onLastAttempt) {
        const ra = parseRetryAfter(res.headers.get("retry-after"));
        await drain(res);
        if ((ra ?? 0) > t.maxRetryAfterMs)
          throw unavailable(`token service of registry ${s.host} is rate limiting us`);
        await budget.failed(
          () => unavailable(`token service of registry ${s.host} failed (HTTP ${res.status})`),
          ra,
        );
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        await drain(res);
        if (s.credentials) throw unauthenticated(`unauthorized: registry ${s.host} rejected the credentials`);
        throw unauthenticated(
          `unauthorized: registry ${s.host} requires credentials for ${s.ref.repository}`,
        );
      }
      if (!res.ok) {
        await drain(res);
        throw unavailable(`token service of registry ${s.host} failed (HTTP ${res.status})`);
      }
      const body = parseJsonObject(
        await readBounded(res, 1024 * 1024, "token response", s.signal),
        "token response",
      );
      const token = typeof body["token"] === "string" ? body["token"] : body["access_token"];
      if (typeof token !== "string" || token.length === 0 || token.length > 65536 || /[\s\r\n]/.test(token))
        throw unavailable(`token service of registry ${s.host} sent no usable token`);
      const expires =
        typeof body["expires_in"] === "number" && body["expires_in"] > 0 ? body["expires_in"] : 60;
      // Refresh a little early; never trust a lifetime above an hour.
      return { token, ttlMs: Math.max(5, Math.min(expires, 3600) - 10) * 1000 };
    }
  }

  #remember(key: string, v: CachedAuth): void {
    this.#cache.delete(key);
    this.#cache.set(key, v);
    while (this.#cache.size > MAX_TOKEN_CACHE) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
  }
}

function cacheKey(s: Session): string {
  return `${s.base.host}\u0000${s.scope}\u0000${s.credKey}`;
}
