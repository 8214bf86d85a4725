import { describe, expect, it } from "vitest";
import { addressScope, embeddedIpv4, formatIp, inCidr, parseCidr, parseIp } from "./net-address.js";

const scope = (a: string) => addressScope(parseIp(a) as Uint8Array);

describe("parseIp", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::1", "0:0:0:0:0:0:0:1"],
    ["[::1]", "0:0:0:0:0:0:0:1"],
    ["fe80::1%eth0", "fe80:0:0:0:0:0:0:1"],
    ["::ffff:127.0.0.1", "0:0:0:0:0:ffff:7f00:1"],
    ["::ffff:7f00:1", "0:0:0:0:0:ffff:7f00:1"],
    ["64:ff9b::a00:1", "64:ff9b:0:0:0:0:a00:1"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
  ])("%s → %s", (text, want) => {
    expect(formatIp(parseIp(text) as Uint8Array)).toBe(want);
  });

  it.each(["", "localhost", "127.1", "2130706433", "0x7f.0.0.1", "1.2.3.256", ":::", "[::1"])(
    "%s is not an address",
    (text) => {
      expect(parseIp(text)).toBeUndefined();
    },
  );
});

describe("addressScope", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["::1", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["0.1.2.3", "reserved"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["169.254.1.1", "link-local"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["100.64.0.1", "shared"],
    ["100.127.255.255", "shared"],
    ["169.254.169.254", "metadata"],
    ["fd00:ec2::254", "metadata"],
    ["100.100.100.200", "metadata"],
    ["168.63.129.16", "metadata"],
    ["::ffff:168.63.129.16", "metadata"],
    // The rest of ::/96 (not IPv4-compatible forms) is not public.
    ["::2", "reserved"],
    ["::ff", "reserved"],
    ["::100", "reserved"],
    ["224.0.0.1", "multicast"],
    ["ff02::1", "multicast"],
    ["255.255.255.255", "reserved"],
    // IPv4 carried in IPv6 is judged by the IPv4 address.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"],
    ["::127.0.0.1", "loopback"],
    ["::ffff:0:127.0.0.1", "loopback"],
    ["64:ff9b::7f00:1", "loopback"],
    ["2002:7f00:1::", "loopback"],
    ["2002:a9fe:a9fe::1", "metadata"],
    // Public.
    ["8.8.8.8", "public"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
    ["2606:4700::1111", "public"],
    ["::ffff:8.8.8.8", "public"],
    ["168.63.129.17", "public"],
  ])("%s is %s", (addr, want) => {
    expect(scope(addr)).toBe(want);
  });
});

describe("CIDR", () => {
  it("matches by prefix, IPv4 ranges also through IPv4-mapped IPv6", () => {
    const net = parseCidr("10.0.0.0/8");
    expect(net).toBeDefined();
    if (!net) return;
    expect(inCidr(parseIp("10.255.0.1") as Uint8Array, net)).toBe(true);
    expect(inCidr(parseIp("11.0.0.1") as Uint8Array, net)).toBe(false);
    expect(inCidr(parseIp("::ffff:10.0.0.1") as Uint8Array, net)).toBe(true);
    const odd = parseCidr("172.16.0.0/12") as NonNullable<ReturnType<typeof parseCidr>>;
    expect(inCidr(parseIp("172.31.0.1") as Uint8Array, odd)).toBe(true);
    expect(inCidr(parseIp("172.32.0.1") as Uint8Array, odd)).toBe(false);
  });

  it.each(["10.0.0.0/33", "::/129", "10.0.0.0/", "x/8", "10.0.0.0"])("%s is refused", (c) => {
    expect(parseCidr(c)).toBeUndefined();
  });

  it("does not read :: or ::1 as IPv4-compatible", () => {
    expect(embeddedIpv4(parseIp("::") as Uint8Array)).toBeUndefined();
    expect(embeddedIpv4(parseIp("::1") as Uint8Array)).toBeUndefined();
  });
});
