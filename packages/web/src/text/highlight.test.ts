import { describe, expect, it } from "vitest";
import { commentStyle, highlightLine } from "./highlight.js";

describe("highlightLine", () => {
  it("splits a shell line into keyword, string and comment tokens that rebuild the line", () => {
    const line = 'if [ "$x" = 1 ]; then echo "a # b" # note';
    const t = highlightLine(line, commentStyle("/etc/x.sh"));
    expect(t.map((x) => x.text).join("")).toBe(line);
    expect(t.filter((x) => x.cls === "kw").map((x) => x.text)).toEqual(["if", "then", "echo"]);
    expect(t.filter((x) => x.cls === "str").map((x) => x.text)).toEqual(['"$x"', '"a # b"']);
    expect(t.at(-1)).toEqual({ cls: "com", text: "# note" });
  });

  it("keeps markup as plain text tokens", () => {
    const line = "<img src=x onerror=alert(1)>";
    const t = highlightLine(line, commentStyle("/a.html"));
    expect(t.map((x) => x.text).join("")).toBe(line);
  });
});
