import { describe, expect, it } from "vitest";
import {
  covers,
  EgressPolicy,
  type EgressRule,
  mergeEgress,
  parseEgressRule,
  ruleText,
} from "./egress-policy.js";

const rule = (t: string) => parseEgressRule(t) as EgressRule;

describe("egress rules", () => {
  it("parses names, *.suffixes and IPv4 CIDRs into canonical form", () => {
    expect(ruleText(rule("API.Example.COM."))).toBe("api.example.com");
    expect(ruleText(rule("*.Example.com"))).toBe("*.example.com");
    expect(ruleText(rule("203.0.113.7"))).toBe("203.0.113.7/32");
    expect(ruleText(rule("203.0.113.0/24"))).toBe("203.0.113.0/24");
    expect(ruleText(rule("0.0.0.0/0"))).toBe("0.0.0.0/0");
  });

  it.each([
    ["", "must be 1 to 253 characters"],
    ["a".repeat(254), "must be 1 to 253 characters"],
    ["a..b", "is not a valid domain name, IPv4 address or CIDR"],
    ["-a.test", "is not a valid domain name, IPv4 address or CIDR"],
    ["a.*.test", "may use * only as a leading `*.`"],
    ["*", "may use * only as a leading `*.`"],
    ["*.com", "is not a valid *.domain pattern"],
    ["1.2.3.4/33", "is not an IPv4 address or CIDR"],
    ["1.2.3", "is not an IPv4 address or CIDR"],
    ["1.2.3.4/8", "has bits set past its prefix length"],
    ["example.123", "is not a valid domain name, IPv4 address or CIDR"],
    ["::1", "is not a valid domain name, IPv4 address or CIDR"],
  ])("%j is refused: %s", (text, why) => {
    expect(parseEgressRule(text)).toBe(why);
  });

  it("deny beats allow; *.x matches names below x only; no allow list allows what is not denied", () => {
    const p = EgressPolicy.of({ allow: ["a.test", "*.b.test"], deny: ["bad.b.test"] });
    expect(p.allowsName("a.test")).toBe(true);
    expect(p.allowsName("x.a.test")).toBe(false);
    expect(p.allowsName("x.b.test")).toBe(true);
    expect(p.allowsName("y.x.b.test")).toBe(true);
    expect(p.allowsName("b.test")).toBe(false);
    expect(p.allowsName("bad.b.test")).toBe(false);
    expect(p.allowsName("evilb.test")).toBe(false);
    const open = EgressPolicy.of({ deny: ["*.c.test", "198.51.100.0/24"] });
    expect(open.allowsName("anything.test")).toBe(true);
    expect(open.allowsName("x.c.test")).toBe(false);
    expect(open.deniesAddress("198.51.100.9")).toBe(true);
    expect(open.deniesAddress("198.51.101.9")).toBe(false);
    expect(EgressPolicy.of({ allow: [] }).allowsName("a.test")).toBe(false);
  });

  it("a proxy's destination (name and address): deny beats allow on either", () => {
    const p = EgressPolicy.of({
      allow: ["a.test", "203.0.113.0/28"],
      deny: ["203.0.113.8/30", "bad.a.test"],
    });
    expect(p.allowsDestination("a.test", "198.51.100.1")).toBe(true);
    expect(p.allowsDestination("203.0.113.2", "203.0.113.2")).toBe(true);
    expect(p.allowsDestination("other.test", "203.0.113.3")).toBe(true);
    expect(p.allowsDestination("other.test", "198.51.100.1")).toBe(false);
    expect(p.allowsDestination("a.test", "203.0.113.9")).toBe(false);
    expect(p.allowsDestination("bad.a.test", "203.0.113.2")).toBe(false);
    expect(EgressPolicy.of({ deny: ["x.test"] }).allowsDestination("y.test", "198.51.100.1")).toBe(true);
  });

  it("covers: a run rule lies inside a project rule", () => {
    expect(covers(rule("*.b.test"), rule("x.b.test"))).toBe(true);
    expect(covers(rule("*.b.test"), rule("*.x.b.test"))).toBe(true);
    expect(covers(rule("*.b.test"), rule("*.b.test"))).toBe(true);
    expect(covers(rule("*.b.test"), rule("b.test"))).toBe(false);
    expect(covers(rule("x.b.test"), rule("*.x.b.test"))).toBe(false);
    expect(covers(rule("10.0.0.0/8"), rule("10.1.0.0/16"))).toBe(true);
    expect(covers(rule("10.1.0.0/16"), rule("10.0.0.0/8"))).toBe(false);
    expect(covers(rule("10.0.0.0/8"), rule("a.test"))).toBe(false);
  });

  it("merges a run's rules into its project's", () => {
    expect(mergeEgress(undefined, {})).toEqual({});
    expect(mergeEgress({ deny: ["a.test"] }, { deny: ["b.test", "a.test"] })).toEqual({
      deny: ["a.test", "b.test"],
    });
    expect(mergeEgress({ allow: ["*.p.test"] }, {})).toEqual({ allow: ["*.p.test"] });
    expect(mergeEgress({ allow: ["*.p.test"] }, { allow: ["x.p.test"] })).toEqual({ allow: ["x.p.test"] });
    expect(mergeEgress({ allow: ["*.p.test"] }, { allow: ["x.p.test", "q.test"] })).toEqual({
      error: `networking.allow[1] "q.test" is outside the project's allow list`,
    });
    expect(mergeEgress({ deny: ["d.test"] }, { allow: ["q.test"] })).toEqual({
      allow: ["q.test"],
      deny: ["d.test"],
    });
  });
});
