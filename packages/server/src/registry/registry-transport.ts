/**
 * The registry transport: one logical GET against the distribution API, as containerd's
 * remotes/docker does it. Per request: auth (anonymous → challenge → bearer token or Basic,
 * registry-auth.ts), redirects followed by hand (Authorization never leaves its origin, no
 * https→http downgrade), retries with exponential backoff on network errors / 429 / 5xx
 * honouring Retry-After (retry.ts), a timeout until headers, and the caller's AbortSignal.
 *
 * Every connection goes through a guarded dispatcher (guarded-connector.ts): loopback, private,
 * link-local, metadata and this host's own addresses are refused unless the operator allows
 * them, checked on the address actually connected to, also after redirects and for token
 * realms. A refused destination fails exactly like an unreachable one (same retries, same
 * message) so imports cannot tell an open port from a closed one.
 */
import { type Dispatcher, fetch, type Response } from "undici";
import {
  type AppError,
  deadlineExceeded,
  notFound,
  permissionDenied,
  unauthenticated,
  unavailable,
  unprocessable,
} from "../core/errors.js";
import { DestinationPolicy } from "./destination-policy.js";
import { type GuardedAgentOptions, guardedAgent, type Resolver } from "./guarded-connector.js";
import { AttemptFailed, drain, networkDetail, registryErrorCodes } from "./http-body.js";
import {
  formatReference,
  hostnameOf,
  type ImageReference,
  isLoopbackHost,
  registryApiHost,
} from "./reference.js";
import { RegistryAuth } from "./registry-auth.js";
import type { Credentials } from "./registry-client.js";
import type { Session } from "./registry-session.js";
import {
  abortError,
  DEFAULT_RETRY,
  parseRetryAfter,
  RETRY_STATUS,
  RetryBudget,
  type RetryPolicy,
  throwIfCallerAborted,
  unreachable,
} from "./retry.js";

export interface TransportOptions {
  /** host[:port] of registries spoken to over plain HTTP (loopback registries always are). */
  readonly insecureRegistries?: readonly string[];
  /**
   * Non-public destinations imports may reach (destination-policy.ts: HOST[:PORT], IP[:PORT],
   * CIDR). Default none: only public addresses.
   */
  readonly privateRegistries?: readonly string[];
  /** Name resolution for connections; tests inject one, the default is the system resolver. */
  readonly resolver?: Resolver;
  /** Told of every destination the policy refused (the server logs it; the caller is not told why). */
  readonly onRefused?: GuardedAgentOptions["onRefused"];
  readonly retry?: Partial<RetryPolicy>;
  /** Until response headers arrive. */
  readonly requestTimeoutMs?: number;
  /** Longest gap between two body chunks of a blob. */
  readonly idleTimeoutMs?: number;
  readonly maxRedirects?: number;
  readonly userAgent?: string;
}

interface RequestOptions {
  readonly accept?: string;
  readonly range?: string;
}

export class RegistryTransport {
  readonly #insecure: ReadonlySet<string>;
  readonly #retry: RetryPolicy;
  readonly #requestTimeoutMs: number;
  readonly #maxRedirects: number;
  readonly #dispatcher: Dispatcher;
  readonly #auth: RegistryAuth;
  readonly idleTimeoutMs: number;
  readonly userAgent: string;

  constructor(options: TransportOptions = {}) {
    this.#insecure = new Set((options.insecureRegistries ?? []).map((h) => h.toLowerCase()));
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.#maxRedirects = options.maxRedirects ?? 5;
    this.userAgent = options.userAgent ?? "contree-server";
    this.#dispatcher = guardedAgent({
      policy: new DestinationPolicy(options.privateRegistries ?? []),
      ...(options.resolver ? { resolver: options.resolver } : {}),
      ...(options.onRefused ? { onRefused: options.onRefused } : {}),
    });
    this.#auth = new RegistryAuth(this);
  }

  get maxRetryAfterMs(): number {
    return this.#retry.maxRetryAfterMs;
  }

  /** The attempts of one logical request under this transport's retry policy. */
  retries(signal: AbortSignal | undefined): RetryBudget {
    return new RetryBudget(this.#retry, signal);
  }

  session(
    ref: ImageReference,
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Session {
    const host = registryApiHost(ref);
    const plain = this.#plainHttpAllowed(host);
    const creds =
      credentials && (credentials.username !== "" || credentials.password !== "") ? credentials : undefined;
    const credKey = this.#auth.credentialKey(creds);
    if (signal?.aborted) throw abortError(signal);
    return {
      ref,
      base: new URL(`${plain ? "http" : "https"}://${host}/`),
      host: ref.registry,
      scope: `repository:${ref.repository}:pull`,
      credentials: creds,
      credKey,
      signal,
    };
  }

  /**
   * GET /v2/<repository>/<path>: a 2xx response (headers only; the body is the caller's), or the
   * AppError the registry's answer maps to. `what` names the object in messages.
   */
  async send(s: Session, path: string, opts: RequestOptions, what: string): Promise<Response> {
    const url = new URL(`/v2/${s.ref.repository}/${path}`, s.base);
    const budget = this.retries(s.signal);
    let authTried = false;
    for (;;) {
      const headers: Record<string, string> = { "user-agent": this.userAgent };
      if (opts.accept) headers["accept"] = opts.accept;
      if (opts.range) headers["range"] = opts.range;
      const auth = this.#auth.header(s);
      if (auth) headers["authorization"] = auth;

      let res: Response;
      try {
        res = await this.fetchFollowing(url, headers, s.signal);
      } catch (err) {
        throwIfCallerAborted(s.signal, err);
        if (!(err instanceof AttemptFailed)) throw err;
        await budget.failed(() =>
          err.reason === "timeout"
            ? deadlineExceeded(`registry ${s.host} did not answer within ${this.#requestTimeoutMs / 1000} s`)
            : unreachable(err),
        );
        continue;
      }

      if (res.status === 401 && !authTried) {
        // The challenge round trip is not a failed attempt.
        authTried = true;
        const challenge = res.headers.get("www-authenticate") ?? "";
        await drain(res);
        await this.#auth.authenticate(s, challenge);
        continue;
      }
      if (RETRY_STATUS.has(res.status)) {
        const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        await drain(res);
        const status = res.status;
        await budget.failed(() => {
          const retryAfter = retryAfterMs === undefined ? undefined : Math.ceil(retryAfterMs / 1000);
          const why = status === 429 ? "is rate limiting us (HTTP 429)" : `failed (HTTP ${status})`;
          return unavailable(`registry ${s.host} ${why} for ${what}`, { retryAfter });
        }, retryAfterMs);
        continue;
      }
      if (res.ok) return res;
      throw await this.#httpError(s, res, what);
    }
  }

  /** One GET with redirects followed under the destination policy; AttemptFailed on network failure. */
  async fetchFollowing(
    start: URL,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    let url = start;
    const h = { ...headers };
    for (let hop = 0; ; hop++) {
      const timeout = AbortSignal.timeout(this.#requestTimeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let res: Response;
      try {
        res = await fetch(url, {
          method: "GET",
          headers: h,
          redirect: "manual",
          signal: sig,
          dispatcher: this.#dispatcher,
        });
      } catch (err) {
        throwIfCallerAborted(signal, err);
        if (timeout.aborted) throw new AttemptFailed("timeout", "timeout");
        throw new AttemptFailed("network", networkDetail(err), err);
      }
      if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
      const location = res.headers.get("location");
      await drain(res);
      if (location === null) throw unavailable(`registry ${start.host} sent a redirect without a location`);
      if (hop >= this.#maxRedirects) throw unavailable(`registry ${start.host} redirected too many times`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw unavailable(`registry ${start.host} sent an invalid redirect`);
      }
      if (next.protocol !== "https:" && next.protocol !== "http:")
        throw unavailable(`registry ${start.host} redirected to a non-http(s) URL`);
      if (next.protocol === "http:" && url.protocol === "https:" && !this.#plainHttpAllowed(next.host))
        throw unavailable(`registry ${start.host} redirected from https to plain http, which is refused`);
      // Blob storage (CDN, S3) gets its own signed URL; our token stays with the registry.
      if (next.origin !== start.origin) delete h["authorization"];
      url = next;
    }
  }

  async #httpError(s: Session, res: Response, what: string): Promise<AppError> {
    const codes = await registryErrorCodes(res, s.signal);
    const suffix = codes.length ? ` (${codes.join(", ")})` : "";
    const refText = formatReference(s.ref);
    switch (res.status) {
      case 401:
        return s.credentials
          ? unauthenticated(
              `unauthorized: registry ${s.host} rejected the credentials for ${s.ref.repository}${suffix}`,
            )
          : unauthenticated(`unauthorized: authentication required for ${refText}${suffix}`);
      case 403:
        return permissionDenied(`unauthorized: access to ${refText} denied by registry ${s.host}${suffix}`);
      case 404:
        if (what.startsWith("manifest")) return notFound(`manifest unknown: ${refText}`);
        return notFound(`blob unknown: ${what.replace(/^blob /, "")} in ${refText}`);
      default:
        if (res.status >= 500)
          return unavailable(`registry ${s.host} failed (HTTP ${res.status}) for ${what}${suffix}`);
        return unprocessable(`registry ${s.host} refused ${what} (HTTP ${res.status})${suffix}`);
    }
  }

  #plainHttpAllowed(host: string): boolean {
    return (
      isLoopbackHost(host) || this.#insecure.has(host.toLowerCase()) || this.#insecure.has(hostnameOf(host))
    );
  }
}
