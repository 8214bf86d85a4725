/**
 * RegistryClient over the OCI distribution HTTP API, on Node's global fetch.
 *
 * Per request: Accept with all four manifest types, auth (anonymous → bearer challenge → token,
 * or Basic), redirects followed by hand (Authorization never leaves its origin, no https→http
 * downgrade), retries with exponential backoff on network errors / 429 / 5xx honouring
 * Retry-After, a timeout until headers and an idle timeout on bodies, and the caller's
 * AbortSignal throughout. Blob downloads resume with Range after a broken connection.
 *
 * Every connection goes through a guarded dispatcher (guarded-connector.ts): loopback, private,
 * link-local, metadata and this host's own addresses are refused unless the operator allows
 * them, checked on the address actually connected to, also after redirects and for token
 * realms. A refused destination fails exactly like an unreachable one (same retries, same
 * message) so imports cannot tell an open port from a closed one.
 */
import { createHmac, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import type { ReadableStreamDefaultReader, ReadableStreamReadResult } from "node:stream/web";
import { type Dispatcher, fetch, type Response } from "undici";
import { type Digest, parseDigest, sha256Of } from "../core/digest.js";
import {
  AppError,
  cancelled,
  deadlineExceeded,
  invalidArgument,
  notFound,
  permissionDenied,
  unauthenticated,
  unavailable,
  unprocessable,
} from "../core/errors.js";
import { checkRealm, parseWwwAuthenticate } from "./auth-challenge.js";
import { DestinationPolicy } from "./destination-policy.js";
import { type GuardedAgentOptions, guardedAgent, type Resolver } from "./guarded-connector.js";
import {
  checkConfigMatchesManifest,
  MAX_METADATA_BYTES,
  manifestMediaType,
  parseImageConfig,
  parseImageManifest,
  parseIndex,
  parseJsonObject,
} from "./manifest.js";
import { MANIFEST_ACCEPT } from "./media-types.js";
import { formatPlatform, hostPlatform, selectPlatform } from "./platform.js";
import {
  formatReference,
  hostnameOf,
  type ImageReference,
  isLoopbackHost,
  manifestSelector,
  registryApiHost,
} from "./reference.js";
import type {
  Credentials,
  Descriptor,
  FetchBlobOptions,
  ImageManifest,
  Platform,
  RegistryClient,
  ResolvedImage,
  ResolveOptions,
} from "./registry-client.js";
import { VerifyingStream } from "./verify-stream.js";

export interface RetryPolicy {
  /** Total attempts per request, first one included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A Retry-After longer than this is not waited for; the call fails with retryAfter set. */
  readonly maxRetryAfterMs: number;
}

export interface HttpRegistryClientOptions {
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

const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
};
const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const MAX_TOKEN_CACHE = 256;

interface Session {
  readonly ref: ImageReference;
  readonly base: URL;
  readonly host: string;
  readonly scope: string;
  readonly credentials: Credentials | undefined;
  readonly credKey: string;
  readonly signal: AbortSignal | undefined;
}

interface CachedAuth {
  readonly header: string | "basic";
  readonly expiresAt: number;
}

/** Network-level failure of one attempt (no usable HTTP response). */
class AttemptFailed extends Error {
  constructor(
    readonly reason: "timeout" | "network",
    detail: string,
    cause?: unknown,
  ) {
    super(detail, { cause });
  }
}

/**
 * The one message for a destination that refused the connection, could not be resolved or
 * reached, or that the destination policy refused. It names nothing (not even the port the
 * caller gave, so an open and a closed port read byte for byte the same); the cause, for the
 * server log, keeps the detail.
 */
export const UNREACHABLE = "registry is unreachable or not an allowed destination";

function unreachable(err: unknown): AppError {
  return unavailable(UNREACHABLE, { cause: err });
}

export class HttpRegistryClient implements RegistryClient {
  readonly #insecure: ReadonlySet<string>;
  readonly #retry: RetryPolicy;
  readonly #requestTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #maxRedirects: number;
  readonly #userAgent: string;
  /** Bearer tokens per (host, scope, credential fingerprint); never the credentials themselves. */
  readonly #auth = new Map<string, CachedAuth>();
  readonly #credSecret = randomBytes(32);
  readonly #dispatcher: Dispatcher;

  constructor(options: HttpRegistryClientOptions = {}) {
    this.#insecure = new Set((options.insecureRegistries ?? []).map((h) => h.toLowerCase()));
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.#maxRedirects = options.maxRedirects ?? 5;
    this.#userAgent = options.userAgent ?? "contree-server";
    this.#dispatcher = guardedAgent({
      policy: new DestinationPolicy(options.privateRegistries ?? []),
      ...(options.resolver ? { resolver: options.resolver } : {}),
      ...(options.onRefused ? { onRefused: options.onRefused } : {}),
    });
  }

  async resolveManifest(ref: ImageReference, options: ResolveOptions = {}): Promise<ResolvedImage> {
    const s = this.#session(ref, options.credentials, options.signal);
    const want = options.platform ?? hostPlatform();
    const refText = formatReference(ref);
    const selector = manifestSelector(ref);

    let top = await this.#getManifest(s, selector, ref.digest, undefined, refText);
    const topDigest = top.digest;
    if (top.kind === "index") {
      const entries = parseIndex(top.doc, `index ${refText}`);
      const chosen = selectPlatform(entries, want);
      if (!chosen) {
        const have = entries.flatMap((e) => (e.platform ? [formatPlatform(e.platform)] : [])).slice(0, 10);
        throw notFound(
          `no manifest for platform ${formatPlatform(want)} in ${refText} (has: ${have.join(", ") || "none"})`,
        );
      }
      top = await this.#getManifest(s, chosen.digest, chosen.digest, chosen.size, refText);
      if (top.kind !== "manifest")
        throw unprocessable(
          `manifest ${chosen.digest} of ${refText} is a nested index, which is not supported`,
        );
    }
    const what = `manifest ${top.digest}`;
    const manifest: ImageManifest = parseImageManifest(top.doc, top.mediaType, what);
    const configBytes = await this.#readBlobBounded(s, manifest.config, `config of ${refText}`);
    const config = parseImageConfig(configBytes, `config ${manifest.config.digest}`);
    checkConfigMatchesManifest(manifest, config, refText);
    const platform: Platform = { os: config.os, architecture: config.architecture, variant: config.variant };
    return {
      reference: refText,
      topDigest,
      manifestDigest: top.digest,
      descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length, platform },
      manifestMediaType: top.mediaType,
      manifest,
      manifestBytes: top.bytes,
      config,
      configBytes,
      platform,
    };
  }

  async fetchBlob(
    ref: ImageReference,
    descriptor: Descriptor,
    options: FetchBlobOptions = {},
  ): Promise<Readable> {
    const digest = parseDigest(descriptor.digest);
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0)
      throw invalidArgument("invalid blob size");
    const s = this.#session(ref, options.credentials, options.signal);
    const own = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, own.signal]) : own.signal;
    const sess: Session = { ...s, signal };
    const first = await this.#send(sess, `blobs/${digest}`, {}, `blob ${digest}`);
    const verifier = new VerifyingStream({ digest, size: descriptor.size }, `blob ${digest}`);
    const source = Readable.from(this.#blobChunks(sess, digest, descriptor.size, first), {
      objectMode: false,
    });
    source.on("error", (err) => verifier.destroy(err));
    verifier.on("close", () => {
      own.abort();
      source.destroy();
    });
    source.pipe(verifier);
    return verifier;
  }

  // ---- manifests and small blobs ----

  async #getManifest(
    s: Session,
    selector: string,
    expectDigest: Digest | undefined,
    expectSize: number | undefined,
    refText: string,
  ): Promise<{
    digest: Digest;
    mediaType: string;
    kind: "index" | "manifest";
    doc: Record<string, unknown>;
    bytes: Buffer;
  }> {
    const what = expectDigest ? `manifest ${expectDigest}` : `manifest for ${refText}`;
    const res = await this.#send(
      s,
      `manifests/${selector}`,
      { accept: MANIFEST_ACCEPT },
      `manifest ${refText}`,
    );
    const bytes = await readBounded(res, MAX_METADATA_BYTES, what, s.signal);
    const digest = sha256Of(bytes);
    if (expectDigest !== undefined && digest !== expectDigest) throw dataLossMismatch(what, digest);
    if (expectSize !== undefined && bytes.length !== expectSize)
      throw new AppError(
        "data_loss",
        `size mismatch for ${what}: got ${bytes.length} bytes, expected ${expectSize}`,
      );
    const header = res.headers.get("docker-content-digest");
    if (expectDigest === undefined && header !== null && header.startsWith("sha256:") && header !== digest)
      throw dataLossMismatch(what, digest);
    const doc = parseJsonObject(bytes, what);
    const { mediaType, kind } = manifestMediaType(res.headers.get("content-type") ?? undefined, doc, what);
    if (kind === "schema1") throw invalidArgument(`${what}: schema1 manifests are not supported`);
    return { digest, mediaType, kind, doc, bytes };
  }

  async #readBlobBounded(s: Session, d: Descriptor, what: string): Promise<Buffer> {
    if (d.size > MAX_METADATA_BYTES)
      throw unprocessable(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
    const res = await this.#send(s, `blobs/${d.digest}`, {}, `blob ${d.digest}`);
    const bytes = await readBounded(res, d.size, what, s.signal);
    if (bytes.length !== d.size)
      throw new AppError(
        "data_loss",
        `size mismatch for ${what}: got ${bytes.length} bytes, expected ${d.size}`,
      );
    const got = sha256Of(bytes);
    if (got !== d.digest) throw dataLossMismatch(what, got);
    return bytes;
  }

  // ---- blob streaming with resume ----

  async *#blobChunks(s: Session, digest: Digest, size: number, first: Response): AsyncGenerator<Buffer> {
    let got = 0;
    let res: Response | undefined = first;
    let failures = 0;
    for (;;) {
      if (res === undefined) {
        const range = got > 0 ? { range: `bytes=${got}-` } : {};
        res = await this.#send(s, `blobs/${digest}`, range, `blob ${digest}`);
        if (got > 0 && res.status === 206) {
          const start = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1];
          if (Number(start) !== got) {
            await res.body?.cancel().catch(() => {});
            throw unavailable(`registry ${s.host} answered a resume request with the wrong range`);
          }
        }
      }
      // A 200 to a Range request is the whole blob again: skip what we already have.
      let skip = got > 0 && res.status === 200 ? got : 0;
      const body = res.body;
      res = undefined;
      if (body === null) throw unavailable(`registry ${s.host} sent no body for blob ${digest}`);
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await this.#readWithIdleTimeout(reader, s.signal);
          if (done) return;
          let chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            skip -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          got += chunk.length;
          if (got > size) {
            yield chunk; // the verifier reports the size mismatch
            return;
          }
          yield chunk;
        }
      } catch (err) {
        throwIfCallerAborted(s.signal, err);
        if (err instanceof AppError) throw err;
        failures++;
        if (failures >= this.#retry.attempts) {
          if (err instanceof AttemptFailed && err.reason === "timeout")
            throw deadlineExceeded(`registry ${s.host} stalled while sending blob ${digest}`, { cause: err });
          throw unavailable(`connection to registry ${s.host} lost while downloading blob ${digest}`, {
            cause: err,
          });
        }
        await sleep(this.#backoff(failures), s.signal);
      } finally {
        // Cancelling closes the connection (a no-op once the body is fully read).
        reader.cancel().catch(() => {});
      }
    }
  }

  async #readWithIdleTimeout(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<ReadableStreamReadResult<Uint8Array>> {
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AttemptFailed("timeout", "idle timeout")), this.#idleTimeoutMs);
    });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (!signal) return;
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([reader.read(), idle, aborted]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  // ---- one logical request: auth, redirects, retries ----

  async #send(
    s: Session,
    path: string,
    opts: { accept?: string; range?: string },
    what: string,
  ): Promise<Response> {
    const url = new URL(`/v2/${s.ref.repository}/${path}`, s.base);
    let authTried = false;
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = { "user-agent": this.#userAgent };
      if (opts.accept) headers["accept"] = opts.accept;
      if (opts.range) headers["range"] = opts.range;
      const auth = this.#authHeader(s);
      if (auth) headers["authorization"] = auth;

      let res: Response;
      try {
        res = await this.#fetchFollowing(url, headers, s.signal);
      } catch (err) {
        throwIfCallerAborted(s.signal, err);
        if (!(err instanceof AttemptFailed)) throw err;
        if (attempt >= this.#retry.attempts) {
          if (err.reason === "timeout")
            throw deadlineExceeded(
              `registry ${s.host} did not answer within ${this.#requestTimeoutMs / 1000} s`,
            );
          throw unreachable(err);
        }
        await sleep(this.#backoff(attempt), s.signal);
        continue;
      }

      if (res.status === 401 && !authTried) {
        authTried = true;
        attempt--; // the challenge round trip is not a failure
        const challenge = res.headers.get("www-authenticate") ?? "";
        await drain(res);
        await this.#authenticate(s, challenge);
        continue;
      }
      if (RETRY_STATUS.has(res.status)) {
        const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        await drain(res);
        const wait = Math.max(retryAfterMs ?? 0, this.#backoff(attempt));
        if (attempt >= this.#retry.attempts || (retryAfterMs ?? 0) > this.#retry.maxRetryAfterMs) {
          const retryAfter = retryAfterMs === undefined ? undefined : Math.ceil(retryAfterMs / 1000);
          const why = res.status === 429 ? "is rate limiting us (HTTP 429)" : `failed (HTTP ${res.status})`;
          throw unavailable(`registry ${s.host} ${why} for ${what}`, { retryAfter });
        }
        await sleep(wait, s.signal);
        continue;
      }
      if (res.ok) return res;
      throw await this.#httpError(s, res, what);
    }
  }

  async #fetchFollowing(
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

  async #authenticate(s: Session, header: string): Promise<void> {
    const challenges = parseWwwAuthenticate(header);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const key = this.#cacheKey(s);
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
    const headers: Record<string, string> = { "user-agent": this.#userAgent, accept: "application/json" };
    if (s.credentials) headers["authorization"] = basicHeader(s.credentials);
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        // Redirects are followed, but the Basic credentials never leave the realm's origin.
        res = await this.#fetchFollowing(url, headers, s.signal);
      } catch (err) {
        throwIfCallerAborted(s.signal, err);
        if (err instanceof AppError) throw err;
        if (attempt >= this.#retry.attempts) {
          throw unreachable(err);
        }
        await sleep(this.#backoff(attempt), s.signal);
        continue;
      }
      if (RETRY_STATUS.has(res.status) && attempt < this.#retry.attempts) {
        const ra = parseRetryAfter(res.headers.get("retry-after"));
        await drain(res);
        if ((ra ?? 0) > this.#retry.maxRetryAfterMs)
          throw unavailable(`token service of registry ${s.host} is rate limiting us`);
        await sleep(Math.max(ra ?? 0, this.#backoff(attempt)), s.signal);
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

  // ---- auth bookkeeping ----

  #session(
    ref: ImageReference,
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Session {
    const host = registryApiHost(ref);
    const plain = this.#plainHttpAllowed(host);
    const creds =
      credentials && (credentials.username !== "" || credentials.password !== "") ? credentials : undefined;
    const credKey = creds
      ? createHmac("sha256", this.#credSecret)
          .update(`${creds.username}\u0000${creds.password}`)
          .digest("hex")
      : "anonymous";
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

  #plainHttpAllowed(host: string): boolean {
    return (
      isLoopbackHost(host) || this.#insecure.has(host.toLowerCase()) || this.#insecure.has(hostnameOf(host))
    );
  }

  #cacheKey(s: Session): string {
    return `${s.base.host}\u0000${s.scope}\u0000${s.credKey}`;
  }

  #authHeader(s: Session): string | undefined {
    const key = this.#cacheKey(s);
    const hit = this.#auth.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= Date.now()) {
      this.#auth.delete(key);
      return undefined;
    }
    if (hit.header === "basic") return s.credentials ? basicHeader(s.credentials) : undefined;
    return hit.header;
  }

  #remember(key: string, v: CachedAuth): void {
    this.#auth.delete(key);
    this.#auth.set(key, v);
    while (this.#auth.size > MAX_TOKEN_CACHE) {
      const oldest = this.#auth.keys().next().value;
      if (oldest === undefined) break;
      this.#auth.delete(oldest);
    }
  }

  #backoff(attempt: number): number {
    const exp = Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (attempt - 1));
    return exp / 2 + Math.random() * (exp / 2);
  }
}

// ---- helpers ----

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
}

function dataLossMismatch(what: string, got: string): AppError {
  return new AppError("data_loss", `digest mismatch for ${what}: got ${got}`);
}

function abortError(signal: AbortSignal): AppError {
  const r: unknown = signal.reason;
  if (r instanceof AppError) return r;
  if (r instanceof Error && r.name === "TimeoutError")
    return deadlineExceeded("registry operation timed out", { cause: r });
  return cancelled("registry operation cancelled", { cause: r });
}

function throwIfCallerAborted(signal: AbortSignal | undefined, err: unknown): void {
  if (signal?.aborted) throw abortError(signal);
  if (err instanceof AppError && (err.kind === "cancelled" || err.kind === "deadline_exceeded")) throw err;
}

function networkDetail(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === "string") return cause.code;
  return "network error";
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(v: string | null): number | undefined {
  if (v === null) return undefined;
  const t = v.trim();
  if (/^\d{1,9}$/.test(t)) return Number(t) * 1000;
  const at = Date.parse(t);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - Date.now());
}

async function drain(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}

async function readBounded(
  res: Response,
  max: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const len = res.headers.get("content-length");
  if (len !== null && Number(len) > max) {
    await drain(res);
    throw unprocessable(`${what} is larger than ${max} bytes`);
  }
  if (res.body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const c of res.body) {
      total += c.byteLength;
      if (total > max) {
        throw unprocessable(`${what} is larger than ${max} bytes`);
      }
      chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
  } catch (err) {
    throwIfCallerAborted(signal, err);
    if (err instanceof AppError) throw err;
    throw unavailable(`connection lost while reading ${what}`, { cause: err });
  }
  return Buffer.concat(chunks, total);
}

async function registryErrorCodes(res: Response, signal: AbortSignal | undefined): Promise<string[]> {
  try {
    const body = await readBounded(res, 64 * 1024, "error body", signal);
    const doc = JSON.parse(body.toString("utf8")) as unknown;
    if (typeof doc !== "object" || doc === null) return [];
    const errors = (doc as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) return [];
    return errors
      .map((e) => (typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined))
      .filter((c): c is string => typeof c === "string" && /^[A-Z_]{1,40}$/.test(c))
      .slice(0, 3);
  } catch {
    return [];
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      if (signal) reject(abortError(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
