import { describe, expect, it } from "vitest";
import { isAppError } from "./errors.js";
import { decodeStreamInput, isPrintable, toStreamRepr } from "./stream-repr.js";

describe("toStreamRepr", () => {
  it("printable ASCII with tab, LF and CR travels as ascii", () => {
    const text = 'hello\tworld\r\n~ !"#';
    expect(toStreamRepr(Buffer.from(text))).toEqual({ value: text, encoding: "ascii" });
  });

  it("an empty buffer is ascii ''", () => {
    expect(toStreamRepr(new Uint8Array())).toEqual({ value: "", encoding: "ascii" });
  });

  it("any other byte makes the whole value base64 of the raw bytes", () => {
    for (const bytes of [[0], [127], [0x80], [27, 91, 48, 109], [0xc3, 0xa9], [0xff, 0xfe], [11], [12]]) {
      const buf = Buffer.from([104, 105, ...bytes]);
      const r = toStreamRepr(buf);
      expect(r.encoding, String(bytes)).toBe("base64");
      expect(Buffer.from(r.value, "base64").equals(buf)).toBe(true);
    }
  });

  it("UTF-8 text is base64 (only printable ASCII may be ascii)", () => {
    const r = toStreamRepr(Buffer.from("héllo ✓", "utf8"));
    expect(r.encoding).toBe("base64");
    expect(Buffer.from(r.value, "base64").toString("utf8")).toBe("héllo ✓");
  });

  it("carries truncated only when given", () => {
    expect(toStreamRepr(Buffer.from("x"), true)).toEqual({ value: "x", encoding: "ascii", truncated: true });
    expect(toStreamRepr(Buffer.from("x"), false)).toEqual({
      value: "x",
      encoding: "ascii",
      truncated: false,
    });
    expect("truncated" in toStreamRepr(Buffer.from("x"))).toBe(false);
  });

  it("encoding is only ever ascii or base64", () => {
    for (let b = 0; b < 256; b++) {
      expect(["ascii", "base64"]).toContain(toStreamRepr(Buffer.from([b])).encoding);
    }
  });

  it("isPrintable matches the client rule byte by byte", () => {
    for (let b = 0; b < 256; b++) {
      const expected = (b >= 32 && b <= 126) || b === 9 || b === 10 || b === 13;
      expect(isPrintable(Uint8Array.of(b)), String(b)).toBe(expected);
    }
  });
});

describe("decodeStreamInput", () => {
  it("ascii (the default) and utf-8 decode as UTF-8 text", () => {
    expect(decodeStreamInput("héllo", undefined, "stdin").toString("utf8")).toBe("héllo");
    expect(decodeStreamInput("abc", "ascii", "stdin").toString()).toBe("abc");
    expect(decodeStreamInput("abc", "utf-8", "stdin").toString()).toBe("abc");
    expect(decodeStreamInput("abc", "utf8", "stdin").toString()).toBe("abc");
  });

  it("base64, including URL-safe and with whitespace", () => {
    const raw = Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]);
    expect(decodeStreamInput(raw.toString("base64"), "base64", "stdin").equals(raw)).toBe(true);
    expect(decodeStreamInput(raw.toString("base64url"), "base64", "stdin").equals(raw)).toBe(true);
    expect(decodeStreamInput("aGVs\nbG8=", "base64", "stdin").toString()).toBe("hello");
    expect(decodeStreamInput("", "base64", "stdin").length).toBe(0);
  });

  it("refuses invalid base64 and unknown encodings with a 400 naming the field", () => {
    for (const [value, enc] of [
      ["not*base64", "base64"],
      ["abc", "hex"],
      ["abc", "latin1"],
    ] as const) {
      try {
        decodeStreamInput(value, enc, "stdin.value");
        expect.unreachable(`${value}/${enc} accepted`);
      } catch (err) {
        expect(isAppError(err) && err.kind).toBe("invalid_argument");
        expect((err as Error).message).toMatch(/^stdin\.value: /);
      }
    }
  });
});
