import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stub, sendJson, startStub } from "../test/http-stub.js";
import { ContreeApi } from "./api.js";
import {
  ContreeError,
  isAbort,
  isBadRequest,
  isConflict,
  isContreeError,
  isForbidden,
  isNotFound,
  isPayloadTooLarge,
  isRateLimited,
  isServerError,
  isTooEarly,
  isUnauthorized,
  isUnprocessable,
  NotFoundError,
} from "./errors.js";
import { Transport } from "./http.js";

describe("HTTP error mapping", () => {
  let stub: Stub;
  let api: ContreeApi;
  beforeAll(async () => {
    stub = await startStub((req, res) => {
      const status = Number(req.query.get("status") ?? "500");
      const mode = req.query.get("mode");
      if (mode === "text") {
        res.writeHead(status, { "content-type": "text/plain", "request-id": "rid-2" });
        res.end("plain failure");
      } else if (mode === "object") {
        sendJson(
          res,
          status,
          { error: { reason: "quota", left: 0 }, status },
          { traceparent: "00-abc-def-01" },
        );
      } else {
        sendJson(res, status, { error: `failed with ${status}`, status }, { "x-request-id": "rid-1" });
      }
    });
    api = new ContreeApi(new Transport({ url: stub.url, token: "T", env: {}, retry: false }));
  });
  afterAll(() => stub.close());

  const call = (status: number, mode?: string) =>
    api.transport.json({ method: "GET", path: "/whoami", query: { status, mode } }).catch((e: unknown) => e);

  it.each([
    [400, "BadRequestError", "bad_request", isBadRequest],
    [401, "UnauthorizedError", "unauthorized", isUnauthorized],
    [403, "ForbiddenError", "forbidden", isForbidden],
    [404, "NotFoundError", "not_found", isNotFound],
    [409, "ConflictError", "conflict", isConflict],
    [413, "PayloadTooLargeError", "payload_too_large", isPayloadTooLarge],
    [422, "UnprocessableError", "unprocessable", isUnprocessable],
    [425, "TooEarlyError", "too_early", isTooEarly],
    [429, "RateLimitedError", "rate_limited", isRateLimited],
    [500, "ServerError", "server_error", isServerError],
    [503, "ServerError", "server_error", isServerError],
  ])("%i → %s", async (status, name, kind, guard) => {
    const e = await call(status);
    expect(e).toBeInstanceOf(ContreeError);
    expect(guard(e)).toBe(true);
    expect(isContreeError(e)).toBe(true);
    const err = e as ContreeError;
    expect(err.name).toBe(name);
    expect(err.kind).toBe(kind);
    expect(err.code).toBe(kind);
    expect(err.status).toBe(status);
    expect(err.error).toBe(`failed with ${status}`);
    expect(err.requestId).toBe("rid-1");
    expect(err.message).toContain(`failed with ${status}`);
    expect(err.message).toContain("GET /v1/whoami");
  });

  it("maps other statuses to a generic http_error", async () => {
    const e = (await call(418)) as ContreeError;
    expect(e.kind).toBe("http_error");
    expect(e.status).toBe(418);
  });

  it("keeps non-string error values and non-JSON bodies, and finds other request id headers", async () => {
    const obj = (await call(400, "object")) as ContreeError;
    expect(obj.error).toEqual({ reason: "quota", left: 0 });
    expect(obj.requestId).toBe("00-abc-def-01");
    const text = (await call(502, "text")) as ContreeError;
    expect(text.error).toBe("plain failure");
    expect(text.requestId).toBe("rid-2");
  });
});

describe("guards", () => {
  it("check the kind field, so copies from another realm or bundle still match", () => {
    const foreign = Object.assign(new Error("x"), { kind: "not_found", name: "NotFoundError" });
    expect(isNotFound(foreign)).toBe(true);
    expect(isContreeError(foreign)).toBe(true);
    expect(isNotFound(new NotFoundError("y"))).toBe(true);
    expect(isNotFound(new Error("z"))).toBe(false);
    expect(isNotFound({ kind: "something_else" })).toBe(false);
    expect(isNotFound(null)).toBe(false);
    expect(isContreeError({ kind: "not_a_kind", message: "m" })).toBe(false);
  });

  it("isAbort also accepts platform AbortErrors", () => {
    expect(isAbort(new DOMException("stop", "AbortError"))).toBe(true);
    expect(isAbort(new Error("no"))).toBe(false);
  });
});
