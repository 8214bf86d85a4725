import { describe, expect, it } from "vitest";
import { lineDiff, splitLines } from "./line-diff.js";

const apply = (d: NonNullable<ReturnType<typeof lineDiff>>) => ({
  old: d.filter((l) => l.op !== "+").map((l) => l.text),
  new: d.filter((l) => l.op !== "-").map((l) => l.text),
});

describe("lineDiff", () => {
  it("finds the shortest edit script and keeps both sides whole", () => {
    const a = splitLines("a\nb\nc\nd\ne\n");
    const b = splitLines("a\nc\nd\nX\ne\nf\n");
    const d = lineDiff(a, b)!;
    expect(apply(d)).toEqual({ old: a, new: b });
    expect(d.filter((l) => l.op !== " ").map((l) => `${l.op}${l.text}`)).toEqual(["-b", "+X", "+f"]);
    expect(d.find((l) => l.text === "e")).toMatchObject({ oldNo: 5, newNo: 5 });
  });

  it("handles empty sides and identical texts", () => {
    expect(lineDiff([], [])).toEqual([]);
    expect(lineDiff([], ["x"])!.map((l) => l.op)).toEqual(["+"]);
    expect(lineDiff(["x"], [])!.map((l) => l.op)).toEqual(["-"]);
    expect(lineDiff(["a", "b"], ["a", "b"])!.every((l) => l.op === " ")).toBe(true);
  });

  it("round-trips random edits", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let t = 0; t < 200; t++) {
      const a = Array.from({ length: rnd(30) }, () => String(rnd(6)));
      const b = Array.from({ length: rnd(30) }, () => String(rnd(6)));
      const d = lineDiff(a, b)!;
      expect(apply(d)).toEqual({ old: a, new: b });
    }
  });

  it("gives up past the edit bound instead of running away", () => {
    const a = Array.from({ length: 500 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 500 }, (_, i) => `b${i}`);
    expect(lineDiff(a, b, 100)).toBeUndefined();
    expect(lineDiff(a, b, 1000)).toHaveLength(1000);
  });
});
