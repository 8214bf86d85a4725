import { describe, expect, it } from "vitest";
import { isKind } from "../core/errors.js";
import { type CaseMode, translateRustRegex } from "./rust-regex.js";

function re(p: string, mode: CaseMode = "sensitive"): RegExp {
  const t = translateRustRegex(p, mode);
  return new RegExp(t.source, t.flags);
}

function rejects(p: string): void {
  let err: unknown;
  try {
    translateRustRegex(p);
  } catch (e) {
    err = e;
  }
  expect(isKind(err, "invalid_argument"), p).toBe(true);
}

describe("Rust regex → JavaScript", () => {
  it("keeps ordinary syntax", () => {
    expect(re("ro+t").test("xroooot")).toBe(true);
    expect(re("^root:").test("root:x:0")).toBe(true);
    expect(re("^root:").test("xroot:")).toBe(false);
    expect(re("a{2,3}").exec("aaaa")?.[0]).toBe("aaa");
    expect(re("a{2,3}?").exec("aaaa")?.[0]).toBe("aa");
    expect(re("(?:ab|cd)+$").test("xabcd")).toBe(true);
    expect(re("(?P<user>\\w+):x").exec("root:x")?.[1]).toBe("root");
    expect(re("(?<user>\\w+):x").exec("root:x")?.[1]).toBe("root");
    expect(re("").test("anything")).toBe(true);
  });

  it("translates anchors, escapes and classes", () => {
    expect(re("\\Aroot").test("root")).toBe(true);
    expect(re("sh\\z").test("/bin/sh")).toBe(true);
    expect(re("sh\\z").test("/bin/shx")).toBe(false);
    expect(re("\\x41\\u0042\\x{43}\\U00000044").test("ABCD")).toBe(true);
    expect(re("[[:digit:]]+").exec("uid 1000")?.[0]).toBe("1000");
    expect(re("[^[:space:]]+").exec("  ab ")?.[0]).toBe("ab");
    expect(re("\\d+").exec("x٣4")?.[0]).toBe("٣4"); // Unicode digits, as in Rust
    expect(re("\\w+").exec("ünï-x")?.[0]).toBe("ünï");
    expect(re("\\pL+").exec("12ab")?.[0]).toBe("ab");
    expect(re("\\p{Greek}+").exec("xαβ")?.[0]).toBe("αβ");
    expect(re("\\p{Lu}").test("a")).toBe(false);
    expect(re("[a\\-z]+").exec("-az")?.[0]).toBe("-az");
    expect(re("[]a]+").exec("x]a]")?.[0]).toBe("]a]");
    expect(re("\\.\\*\\{\\}").test(".*{}")).toBe(true);
    expect(re("a.c").test("a\nc")).toBe(false);
    expect(re("(?s)a.c").test("a\nc")).toBe(true);
    expect(re("\\bfoo\\b").test("a foo b")).toBe(true);
    expect(re("\\<foo\\>").test("a foo b")).toBe(true);
    expect(re("\\<foo").test("afoo")).toBe(false);
  });

  it("handles case flags: whole-pattern, scoped, smart", () => {
    const whole = translateRustRegex("(?i)root");
    expect(whole.flags).toContain("i");
    expect(re("(?i)root").test("ROOT")).toBe(true);
    expect(re("ROOT", "insensitive").test("root")).toBe(true);
    expect(re("a(?i)b").test("aB")).toBe(true);
    expect(re("a(?i)b").test("AB")).toBe(false);
    expect(re("(?i:a)b").test("Ab")).toBe(true);
    expect(re("(?i:a)b").test("AB")).toBe(false);
    expect(re("(?i)a(?-i)b").test("Ab")).toBe(true);
    expect(re("(?i)a(?-i)b").test("AB")).toBe(false);
    expect(re("(?i)[a-c]+").exec("xAbC")?.[0]).toBe("AbC");
    expect(re("x(?i)[a-c]+").exec("xAbC")?.[0]).toBe("xAbC");
    expect(re("root", "smart").test("ROOT")).toBe(true);
    expect(re("Root", "smart").test("root")).toBe(false);
    expect(re("(?x) r o o t # comment").test("root")).toBe(true);
    expect(re("(?U)a+").exec("aaa")?.[0]).toBe("a");
  });

  it("rejects what Rust rejects or JavaScript cannot express", () => {
    for (const p of [
      "(?=x)",
      "(?!x)",
      "(?<=x)",
      "(?<!x)",
      "(a)\\1",
      "\\k",
      "a**",
      "*a",
      "(",
      ")",
      "[a",
      "[a&&b]",
      "[[a]]",
      "a{",
      "a{1001}",
      "(?Z)",
      "\\p{NoSuchClass}",
      "\\x{110000}",
      "a{3,2}",
    ]) {
      rejects(p);
    }
  });
});
