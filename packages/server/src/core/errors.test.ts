import { describe, expect, it } from "vitest";
import {
  AppError,
  ERROR_KINDS,
  HTTP_STATUS_BY_KIND,
  isKind,
  notFound,
  resourceExhausted,
  toAppError,
} from "./errors.js";
import { isUuid, newId } from "./ids.js";

describe("errors", () => {
  it("every kind has an HTTP status", () => {
    for (const k of ERROR_KINDS) expect(HTTP_STATUS_BY_KIND[k], k).toBeGreaterThanOrEqual(400);
    expect(new AppError("not_found", "x").status).toBe(404);
    expect(new AppError("payload_too_large", "x").status).toBe(413);
  });

  it("helpers build the right kind and keep retryAfter and cause", () => {
    const cause = new Error("disk");
    const e = resourceExhausted("busy", { retryAfter: 3, cause });
    expect(e.kind).toBe("resource_exhausted");
    expect(e.retryAfter).toBe(3);
    expect(e.cause).toBe(cause);
    expect(isKind(notFound("x"), "not_found")).toBe(true);
    expect(isKind(new Error("x"), "not_found")).toBe(false);
  });

  it("toAppError: AppErrors pass, AbortError is cancelled, anything else is an opaque internal", () => {
    const nf = notFound("gone");
    expect(toAppError(nf)).toBe(nf);
    const abort = new DOMException("aborted", "AbortError");
    expect(toAppError(abort).kind).toBe("cancelled");
    const raw = new Error("ENOENT: no such file or directory, open '/var/lib/contree/secret'");
    const wrapped = toAppError(raw);
    expect(wrapped.kind).toBe("internal");
    expect(wrapped.message).toBe("internal error");
    expect(wrapped.cause).toBe(raw);
    expect(toAppError("string thrown").kind).toBe("internal");
  });
});

describe("ids", () => {
  it("newId is a lowercase canonical UUID", () => {
    const ids = new Set(Array.from({ length: 100 }, () => newId()));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(isUuid(id)).toBe(true);
  });
  it("isUuid rejects uppercase and non-canonical forms", () => {
    expect(isUuid("3f0c9a4e-6b1d-5c2e-9a7f-0d4b8e2c1a55")).toBe(true);
    expect(isUuid("3F0C9A4E-6B1D-5C2E-9A7F-0D4B8E2C1A55")).toBe(false);
    expect(isUuid("3f0c9a4e6b1d5c2e9a7f0d4b8e2c1a55")).toBe(false);
    expect(isUuid("{3f0c9a4e-6b1d-5c2e-9a7f-0d4b8e2c1a55}")).toBe(false);
  });
});
