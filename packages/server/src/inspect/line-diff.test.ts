import { describe, expect, it } from "vitest";
import { lineEdits, unifiedDiff } from "./line-diff.js";

describe("line diff", () => {
  it("gives the shortest edit script", () => {
    const ops = lineEdits(["a", "b", "c", "d"], ["a", "x", "c", "d", "e"], 100);
    expect(ops?.map((o) => `${o.t}${o.line}`)).toEqual([" a", "-b", "+x", " c", " d", "+e"]);
  });

  it("writes hunks with three lines of context, split when far apart", () => {
    const old = Array.from({ length: 20 }, (_, i) => `l${i}`);
    const now = old.map((l, i) => (i === 1 || i === 18 ? `${l}!` : l));
    expect(unifiedDiff("/f", `${old.join("\n")}\n`, `${now.join("\n")}\n`)).toBe(
      [
        "--- a/f",
        "+++ b/f",
        "@@ -1,5 +1,5 @@",
        " l0",
        "-l1",
        "+l1!",
        " l2",
        " l3",
        " l4",
        "@@ -16,5 +16,5 @@",
        " l15",
        " l16",
        " l17",
        "-l18",
        "+l18!",
        " l19",
        "",
      ].join("\n"),
    );
  });

  it("identical texts give nothing; too many edits give up", () => {
    expect(unifiedDiff("/f", "a\n", "a\n")).toBe("");
    const many = Array.from({ length: 50 }, (_, i) => `${i}`).join("\n");
    expect(unifiedDiff("/f", many, many.replace(/\d/g, "x"), 10)).toBeNull();
  });
});
