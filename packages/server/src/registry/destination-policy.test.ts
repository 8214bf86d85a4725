import { describe, expect, it } from "vitest";
import { parseIp } from "../core/net-address.js";
import { DestinationPolicy, parseAllowEntry } from "./destination-policy.js";

const HOST_ADDR = "203.0.114.7";
const policy = (allow: string[] = []) =>
  new DestinationPolicy(allow, () => [parseIp(HOST_ADDR) as Uint8Array, parseIp("127.0.0.1") as Uint8Array]);
const allowed = (p: DestinationPolicy, hostname: string, port: number, address: string) =>
  p.check({ hostname, port }, address).allowed;

describe("DestinationPolicy", () => {
  it("allows public addresses and refuses everything else by default", () => {
    const p = policy();
    expect(allowed(p, "registry-1.docker.io", 443, "54.1.2.3")).toBe(true);
    expect(allowed(p, "2606:4700::1111", 443, "2606:4700::1111")).toBe(true);
    for (const a of [
      "127.0.0.1",
      "::1",
      "0.0.0.0",
      "::",
      "10.0.0.1",
      "172.20.0.1",
      "192.168.0.1",
      "fd00::1",
      "169.254.1.1",
      "fe80::1",
      "100.64.0.1",
      "169.254.169.254",
      "fd00:ec2::254",
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
      "::127.0.0.1",
      "224.0.0.1",
    ])
      expect(allowed(p, "evil.example", 443, a), a).toBe(false);
  });

  it("refuses the host's own public address (that is the server itself)", () => {
    expect(policy().check({ hostname: HOST_ADDR, port: 80 }, HOST_ADDR)).toEqual({
      allowed: false,
      scope: "local",
    });
    expect(allowed(policy([HOST_ADDR]), HOST_ADDR, 80, HOST_ADDR)).toBe(true);
  });

  it("allows what the operator lists, on the listed port only", () => {
    const p = policy(["127.0.0.1:5000", "[::1]:5001", "10.0.0.0/8", "registry.internal:443"]);
    expect(allowed(p, "127.0.0.1", 5000, "127.0.0.1")).toBe(true);
    expect(allowed(p, "127.0.0.1", 5001, "127.0.0.1")).toBe(false);
    expect(allowed(p, "localhost", 5000, "127.0.0.1")).toBe(true);
    expect(allowed(p, "::ffff:127.0.0.1", 5000, "::ffff:127.0.0.1")).toBe(true);
    expect(allowed(p, "::1", 5001, "::1")).toBe(true);
    expect(allowed(p, "::1", 5000, "::1")).toBe(false);
    expect(allowed(p, "x", 1, "10.9.8.7")).toBe(true);
    expect(allowed(p, "x", 1, "11.9.8.7")).toBe(true);
    expect(allowed(p, "registry.internal", 443, "192.168.4.4")).toBe(true);
    expect(allowed(p, "registry.internal.", 443, "192.168.4.4")).toBe(true);
    expect(allowed(p, "registry.internal", 80, "192.168.4.4")).toBe(false);
    expect(allowed(p, "other.internal", 443, "192.168.4.4")).toBe(false);
  });

  it("reaches a metadata address only when it is listed exactly", () => {
    expect(allowed(policy(["169.254.0.0/16"]), "x", 80, "169.254.169.254")).toBe(false);
    expect(allowed(policy(["169.254.0.0/16"]), "x", 80, "169.254.1.2")).toBe(true);
    expect(allowed(policy(["metadata.internal"]), "metadata.internal", 80, "169.254.169.254")).toBe(false);
    expect(allowed(policy(["169.254.169.254"]), "x", 80, "169.254.169.254")).toBe(true);
    expect(allowed(policy(["fd00::/8"]), "x", 80, "fd00:ec2::254")).toBe(false);
  });

  it("parses entries and names the bad ones", () => {
    for (const ok of [
      "localhost",
      "registry.internal:5000",
      "127.0.0.1",
      "127.0.0.1:5000",
      "::1",
      "[::1]",
      "[::1]:5000",
      "10.0.0.0/8",
      "fd00::/8",
    ])
      expect(typeof parseAllowEntry(ok), ok).toBe("object");
    for (const bad of ["", "10.0.0.0/33", "host:0", "host:70000", "a..b", "[::1", "http://x", "1.2.3"])
      expect(typeof parseAllowEntry(bad), bad).toBe("string");
  });
});
