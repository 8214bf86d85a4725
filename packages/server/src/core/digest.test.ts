import { describe, expect, it } from "vitest";
import { digestFromHex, hexOf, isSha256Hex, parseDigest, sha256, sha256Of } from "./digest.js";
import { isAppError } from "./errors.js";

const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function kind(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return isAppError(err) ? err.kind : "other";
  }
}

describe("digests", () => {
  it("sha256Of knows the empty digest and agrees with the streaming hash", () => {
    expect(sha256Of("")).toBe(`sha256:${EMPTY}`);
    const h = sha256();
    h.update("hel");
    h.update(Buffer.from("lo"));
    expect(`sha256:${h.digest("hex")}`).toBe(sha256Of("hello"));
    expect(sha256Of(new Uint8Array([104, 101, 108, 108, 111]))).toBe(sha256Of("hello"));
  });

  it("parseDigest accepts only sha256:<64 lowercase hex>", () => {
    expect(parseDigest(`sha256:${EMPTY}`)).toBe(`sha256:${EMPTY}`);
    for (const bad of [
      EMPTY,
      `sha256:${EMPTY.toUpperCase()}`,
      `sha256:${EMPTY.slice(1)}`,
      `sha256:${EMPTY}0`,
      `sha512:${EMPTY}`,
      `SHA256:${EMPTY}`,
      `sha256:${EMPTY}\n`,
      `sha256:../../${EMPTY.slice(6)}`,
      "",
    ]) {
      expect(
        kind(() => parseDigest(bad)),
        bad,
      ).toBe("invalid_argument");
    }
  });

  it("parseDigest does not echo a huge hostile value", () => {
    try {
      parseDigest("x".repeat(100_000));
    } catch (err) {
      expect((err as Error).message.length).toBeLessThan(200);
    }
  });

  it("digestFromHex and hexOf are inverse; isSha256Hex is strict", () => {
    expect(hexOf(digestFromHex(EMPTY))).toBe(EMPTY);
    expect(isSha256Hex(EMPTY)).toBe(true);
    expect(isSha256Hex(EMPTY.toUpperCase())).toBe(false);
    expect(isSha256Hex(`${EMPTY}00`)).toBe(false);
    expect(kind(() => digestFromHex(`sha256:${EMPTY}`))).toBe("invalid_argument");
    expect(kind(() => digestFromHex("zz".repeat(32)))).toBe("invalid_argument");
  });
});
