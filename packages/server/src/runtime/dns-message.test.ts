import { describe, expect, it } from "vitest";
import { buildQuery, buildResponse, parseQuery, parseResponse, TYPE_A, TYPE_CNAME } from "./dns-message.js";

describe("dns messages", () => {
  it("a query round-trips; our response parses back", () => {
    const q = parseQuery(buildQuery(0x1234, { name: "allowed.test", type: TYPE_A, cls: 1 }));
    expect(q).toEqual({
      id: 0x1234,
      recursionDesired: true,
      opcode: 0,
      question: { name: "allowed.test", type: TYPE_A, cls: 1 },
    });
    if (q === null) throw new Error("unparsed");
    const res = parseResponse(
      buildResponse(q, 0, [
        { name: "allowed.test", type: TYPE_CNAME, cls: 1, ttl: 30, value: "edge.test" },
        { name: "edge.test", type: TYPE_A, cls: 1, ttl: 60, value: "203.0.113.5" },
      ]),
    );
    expect(res?.answers).toEqual([
      { name: "allowed.test", type: TYPE_CNAME, cls: 1, ttl: 30, value: "edge.test" },
      { name: "edge.test", type: TYPE_A, cls: 1, ttl: 60, value: "203.0.113.5" },
    ]);
    expect(res?.id).toBe(0x1234);
    expect(res?.rcode).toBe(0);
  });

  it("compressed names are followed; pointer loops, overlong names and truncation are refused", () => {
    const q = buildQuery(1, { name: "a.test", type: TYPE_A, cls: 1 });
    // An answer whose owner is a pointer to the question name (offset 12).
    const head = Buffer.from(q);
    head.writeUInt16BE(0x8180, 2);
    head.writeUInt16BE(1, 6);
    const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 203, 0, 113, 9]);
    expect(parseResponse(Buffer.concat([head, rr]))?.answers[0]).toEqual({
      name: "a.test",
      type: TYPE_A,
      cls: 1,
      ttl: 5,
      value: "203.0.113.9",
    });
    // A pointer to itself.
    const loop = Buffer.concat([
      head,
      Buffer.from([0xc0, head.length, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4]),
    ]);
    expect(parseResponse(loop)).toBeNull();
    // Cut short anywhere: never a throw, never a bogus record.
    const full = Buffer.concat([head, rr]);
    for (let n = 0; n < full.length; n++) expect(parseResponse(full.subarray(0, n))).toBeNull();
    // A name over 255 bytes.
    const long = Buffer.concat([
      Buffer.alloc(12),
      ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 97)])),
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    long.writeUInt16BE(1, 4);
    expect(parseQuery(long)).toBeNull();
    // A response is not a query, nor are two questions.
    expect(parseQuery(full)).toBeNull();
    const two = Buffer.from(q);
    two.writeUInt16BE(2, 4);
    expect(parseQuery(two)).toBeNull();
  });
});
