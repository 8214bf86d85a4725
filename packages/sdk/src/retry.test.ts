import { afterEach, describe, expect, it } from "vitest";
import { type Stub, sendJson, startStub } from "../test/http-stub.js";
import { ContreeApi } from "./api.js";
import { isAbort, isNetworkError, isRateLimited, isServerError, isTimeout } from "./errors.js";
import { Transport, type TransportOptions } from "./http.js";
import { backoffDelay, DEFAULT_RETRY_POLICY, isRetryable, parseRetryAfter } from "./retry.js";

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it("reads delta seconds and HTTP dates", () => {
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("1.5", now)).toBe(1500);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:07 GMT", now)).toBe(7000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now)).toBe(0); // in the past
  });
  it("ignores absent or malformed values", () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter("", now)).toBeUndefined();
    expect(parseRetryAfter("-1", now)).toBeUndefined();
    expect(parseRetryAfter("12abc", now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
  });
});

describe("isRetryable", () => {
  it("replays 425/429 for any method, 5xx/410/network only for safe methods", () => {
    for (const m of ["GET", "HEAD", "DELETE", "POST", "PATCH"]) {
      expect(isRetryable(m, 425)).toBe(true);
      expect(isRetryable(m, 429)).toBe(true);
      expect(isRetryable(m, 400)).toBe(false);
      expect(isRetryable(m, 404)).toBe(false);
    }
    for (const m of ["GET", "HEAD", "DELETE"]) {
      expect(isRetryable(m, 503)).toBe(true);
      expect(isRetryable(m, 410)).toBe(true);
      expect(isRetryable(m, undefined)).toBe(true);
    }
    for (const m of ["POST", "PATCH"]) {
      expect(isRetryable(m, 500)).toBe(false);
      expect(isRetryable(m, 503)).toBe(false);
      expect(isRetryable(m, undefined)).toBe(false);
    }
  });
});

describe("backoffDelay", () => {
  it("grows exponentially within [step/2, step], is capped, and defers to Retry-After", () => {
    const p = { ...DEFAULT_RETRY_POLICY, initialDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(1, p, undefined, () => 0)).toBe(50);
    expect(backoffDelay(1, p, undefined, () => 1)).toBe(100);
    expect(backoffDelay(3, p, undefined, () => 1)).toBe(400);
    expect(backoffDelay(10, p, undefined, () => 1)).toBe(1000);
    expect(backoffDelay(10, p, 2500)).toBe(2500);
  });
});

describe("Transport retries against a real HTTP server", () => {
  let stub: Stub | undefined;
  afterEach(async () => {
    await stub?.close();
    stub = undefined;
  });

  const fast: TransportOptions["retry"] = { initialDelayMs: 5, maxDelayMs: 20 };
  const api = (s: Stub, extra: TransportOptions = {}) =>
    new ContreeApi(new Transport({ url: s.url, token: "T", env: {}, retry: fast, ...extra }));

  const WHOAMI = { token_uuid: "u", token_expiration: null, permissions: {}, operations_stat: {} };

  it("retries a GET through 503s, honouring Retry-After in seconds", async () => {
    let n = 0;
    stub = await startStub((_req, res) => {
      n++;
      if (n <= 2) sendJson(res, 503, { error: "busy", status: 503 }, { "retry-after": "0" });
      else sendJson(res, 200, WHOAMI);
    });
    const t0 = Date.now();
    expect(await api(stub).whoami()).toEqual(WHOAMI);
    expect(stub.requests).toHaveLength(3);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("waits for Retry-After given as an HTTP date", async () => {
    let n = 0;
    stub = await startStub((_req, res) => {
      n++;
      // HTTP dates have 1 s resolution: two seconds ahead means a wait of 1..2 s.
      if (n === 1)
        sendJson(
          res,
          429,
          { error: "slow down" },
          { "retry-after": new Date(Date.now() + 2000).toUTCString() },
        );
      else sendJson(res, 200, WHOAMI);
    });
    const t0 = Date.now();
    await api(stub).whoami();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(stub.requests).toHaveLength(2);
  });

  it("never replays a POST on 5xx, but does on 425 and 429", async () => {
    stub = await startStub((_req, res) =>
      sendJson(res, 503, { error: "down", status: 503 }, { "retry-after": "0" }),
    );
    const err = await api(stub)
      .spawnInstance({ command: "true", image: "tag:x" })
      .catch((e: unknown) => e);
    expect(isServerError(err)).toBe(true);
    expect(stub.requests).toHaveLength(1);
    await stub.close();

    let n = 0;
    stub = await startStub((_req, res) => {
      n++;
      if (n === 1) sendJson(res, 425, { error: "too early" }, { "retry-after": "0" });
      else if (n === 2) sendJson(res, 429, { error: "rate" }, { "retry-after": "0" });
      else sendJson(res, 202, { uuid: "11111111-2222-3333-4444-555555555555" });
    });
    const created = await api(stub).spawnInstance({ command: "true", image: "tag:x" });
    expect(created.uuid).toBe("11111111-2222-3333-4444-555555555555");
    expect(stub.requests.map((r) => JSON.parse(r.body.toString()).command)).toEqual(["true", "true", "true"]);
  });

  it("retries network failures for GET but not for POST", async () => {
    let n = 0;
    stub = await startStub((req, res) => {
      n++;
      if (n === 1 || req.method === "POST") {
        res.socket?.destroy();
        return;
      }
      sendJson(res, 200, WHOAMI);
    });
    expect(await api(stub).whoami()).toEqual(WHOAMI);
    const err = await api(stub)
      .importImage({ registry: { url: "docker://x" } })
      .catch((e: unknown) => e);
    expect(isNetworkError(err)).toBe(true);
    expect(stub.requests.filter((r) => r.method === "POST")).toHaveLength(1);
  });

  it("gives up after maxAttempts and surfaces the last error", async () => {
    stub = await startStub((_req, res) => sendJson(res, 502, { error: "bad gateway" }));
    const err = await api(stub, { retry: { ...fast, maxAttempts: 3 } })
      .whoami()
      .catch((e: unknown) => e);
    expect(isServerError(err)).toBe(true);
    expect((err as { status: number }).status).toBe(502);
    expect(stub.requests).toHaveLength(3);
  });

  it("fails at once when Retry-After exceeds the policy's limit, and retry:false disables retries", async () => {
    stub = await startStub((_req, res) => sendJson(res, 429, { error: "later" }, { "retry-after": "3600" }));
    const err = await api(stub)
      .whoami()
      .catch((e: unknown) => e);
    expect(isRateLimited(err)).toBe(true);
    expect((err as { retryAfterMs: number }).retryAfterMs).toBe(3_600_000);
    expect(stub.requests).toHaveLength(1);
    const err2 = await api(stub, { retry: false })
      .whoami()
      .catch((e: unknown) => e);
    expect(isRateLimited(err2)).toBe(true);
    expect(stub.requests).toHaveLength(2);
  });

  it("times out a slow call with TimeoutError, across retries", async () => {
    stub = await startStub((_req, res) => {
      setTimeout(() => sendJson(res, 200, WHOAMI), 2000);
    });
    const t0 = Date.now();
    const err = await api(stub)
      .whoami({ timeoutMs: 150 })
      .catch((e: unknown) => e);
    expect(isTimeout(err)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it("aborts with AbortError, also while sleeping between retries", async () => {
    stub = await startStub((_req, res) => sendJson(res, 503, { error: "x" }, { "retry-after": "5" }));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const err = await api(stub)
      .whoami({ signal: ac.signal })
      .catch((e: unknown) => e);
    expect(isAbort(err)).toBe(true);
    expect((err as { kind: string }).kind).toBe("aborted");
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(stub.requests).toHaveLength(1);
  });
});
