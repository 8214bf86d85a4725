import { describe, expect, it } from "vitest";
import { isProtocolError } from "./errors.js";
import {
  bytesToBase64,
  decodeStreamRepr,
  encodeStreamRepr,
  StreamReprTextDecoder,
  streamReprToText,
} from "./stream-repr.js";

describe("StreamRepr", () => {
  it("decodes ascii and base64", () => {
    expect(streamReprToText({ value: "hi\n", encoding: "ascii" })).toBe("hi\n");
    expect(streamReprToText({ value: "aGkK", encoding: "base64" })).toBe("hi\n");
    expect([...decodeStreamRepr({ value: "AP8=", encoding: "base64" })]).toEqual([0, 255]);
    expect(decodeStreamRepr(null).length).toBe(0);
    expect(decodeStreamRepr({ value: "", encoding: "base64" }).length).toBe(0);
  });

  it("replaces invalid UTF-8 when decoding to text", () => {
    expect(
      streamReprToText({ value: bytesToBase64(new Uint8Array([0x61, 0xff, 0x62])), encoding: "base64" }),
    ).toBe("a\uFFFDb");
  });

  it("rejects invalid base64 with a ProtocolError", () => {
    let err: unknown;
    try {
      decodeStreamRepr({ value: "not base64!!", encoding: "base64" });
    } catch (e) {
      err = e;
    }
    expect(isProtocolError(err)).toBe(true);
  });

  it("encodes printable ASCII plus TAB/LF/CR as ascii, anything else as base64", () => {
    expect(encodeStreamRepr("a\tb\r\n")).toEqual({ value: "a\tb\r\n", encoding: "ascii" });
    expect(encodeStreamRepr(new Uint8Array([104, 105]))).toEqual({ value: "hi", encoding: "ascii" });
    expect(encodeStreamRepr("é")).toEqual({ value: "w6k=", encoding: "base64" });
    expect(encodeStreamRepr(new Uint8Array([0]))).toEqual({ value: "AA==", encoding: "base64" });
    expect(encodeStreamRepr("\x1b[0m").encoding).toBe("base64");
  });

  it("round-trips large binary data", () => {
    const data = new Uint8Array(300_000).map((_, i) => (i * 7919) % 256);
    expect(decodeStreamRepr(encodeStreamRepr(data))).toEqual(data);
  });

  it("keeps multi-byte characters intact across base64 chunks", () => {
    const bytes = new TextEncoder().encode("✓ ok ✓");
    const dec = new StreamReprTextDecoder();
    let text = "";
    for (let i = 0; i < bytes.length; i++) {
      text += dec.push({ value: bytesToBase64(bytes.subarray(i, i + 1)), encoding: "base64" });
    }
    text += dec.flush();
    expect(text).toBe("✓ ok ✓");
  });
});
