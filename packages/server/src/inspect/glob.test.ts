import { describe, expect, it } from "vitest";
import { compileGlobs, Glob } from "./glob.js";

describe("globs", () => {
  it("matches ripgrep-style patterns", () => {
    expect(new Glob("*.conf").matches("a.conf")).toBe(true);
    expect(new Glob("*.conf").matches("etc/a.conf")).toBe(false);
    expect(new Glob("etc/*.conf").matches("etc/a.conf")).toBe(true);
    expect(new Glob("**/x").matches("x")).toBe(true);
    expect(new Glob("**/x").matches("a/b/x")).toBe(true);
    expect(new Glob("a/**").matches("a/b/c")).toBe(true);
    expect(new Glob("a/**/c").matches("a/c")).toBe(true);
    expect(new Glob("a/**/c").matches("a/b/b/c")).toBe(true);
    expect(new Glob("*.{c,h}").matches("x.h")).toBe(true);
    expect(new Glob("*.{c,h}").matches("x.o")).toBe(false);
    expect(new Glob("f?le[0-9]").matches("file7")).toBe(true);
    expect(new Glob("[!a]*").matches("abc")).toBe(false);
    expect(new Glob("\\*").matches("*")).toBe(true);
    expect(new Glob("ünï*").matches("ünïcödé")).toBe(true);
  });

  it("is linear on hostile globs", () => {
    const g = new Glob(`${"*a".repeat(200)}b`);
    const t = performance.now();
    expect(g.matches("a".repeat(1000))).toBe(false);
    expect(performance.now() - t).toBeLessThan(1000);
  });

  it("combines inclusions and exclusions", () => {
    const f = compileGlobs(["*.txt", "!secret*"]);
    expect(f.includesFile("a.txt", "d/a.txt", "/d/a.txt")).toBe(true);
    expect(f.includesFile("secret.txt", "secret.txt", "/secret.txt")).toBe(false);
    expect(f.includesFile("a.md", "a.md", "/a.md")).toBe(false);
    const x = compileGlobs(["!opt"]);
    expect(x.entersDir("opt", "opt", "/opt")).toBe(false);
    expect(x.includesFile("a", "a", "/a")).toBe(true);
  });
});
