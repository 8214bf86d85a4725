/**
 * IP addresses as bytes, CIDR ranges, and the scope of an address (public, loopback, private,
 * link-local, …). Used to decide which network destinations the server itself may connect to.
 * IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
 * 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address they carry.
 */
import { isIP } from "node:net";

/** 4 bytes (IPv4) or 16 bytes (IPv6). */
export type IpBytes = Uint8Array;

export type AddressScope =
  | "public"
  | "unspecified"
  | "loopback"
  | "private"
  | "link-local"
  | "shared"
  | "metadata"
  | "multicast"
  | "reserved";

export interface Cidr {
  readonly bytes: IpBytes;
  readonly prefix: number;
}

/** Parses a literal IPv4 or IPv6 address ("[…]" and a "%zone" suffix are accepted); undefined if not one. */
export function parseIp(text: string): IpBytes | undefined {
  let s = text;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const version = isIP(s);
  if (version === 4) return Uint8Array.from(s.split(".").map(Number));
  if (version !== 6) return undefined;
  const out = new Uint8Array(16);
  let v4: number[] | undefined;
  if (s.includes(".")) {
    const at = s.lastIndexOf(":");
    v4 = s
      .slice(at + 1)
      .split(".")
      .map(Number);
    s = `${s.slice(0, at + 1)}0:0`;
  }
  const [head = "", tail] = s.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (v4) out.set(v4, 12);
  return out;
}

/** "a.b.c.d/n" or "x:y::/n"; undefined if malformed or the prefix is out of range. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.lastIndexOf("/");
  if (slash < 0) return undefined;
  const bytes = parseIp(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (bytes === undefined || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bytes.length * 8) return undefined;
  return { bytes, prefix };
}

export function formatIp(b: IpBytes): string {
  if (b.length === 4) return b.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  return groups.join(":");
}

/**
 * The IPv4 address an IPv6 address carries, for the forms that reach IPv4 hosts (mapped,
 * compatible, NAT64, 6to4), else undefined. `::` and `::1` are not treated as compatible forms.
 */
export function embeddedIpv4(b: IpBytes): IpBytes | undefined {
  if (b.length !== 16) return undefined;
  const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return b.slice(12);
  // SIIT "IPv4-translated" ::ffff:0:a.b.c.d
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12)) return b.slice(12);
  if (zeros(0, 12) && !zeros(12, 15)) return b.slice(12);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return b.slice(12);
  if (b[0] === 0x20 && b[1] === 0x02) return b.slice(2, 6);
  return undefined;
}

export function inCidr(addr: IpBytes, cidr: Cidr): boolean {
  let a = addr;
  if (a.length !== cidr.bytes.length) {
    const v4 = embeddedIpv4(a);
    if (v4 === undefined || cidr.bytes.length !== 4) return false;
    a = v4;
  }
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((a[full] ?? 0) & mask) === ((cidr.bytes[full] ?? 0) & mask);
}

export function sameAddress(a: IpBytes, b: IpBytes): boolean {
  const x = a.length === b.length ? a : (embeddedIpv4(a) ?? a);
  const y = a.length === b.length ? b : (embeddedIpv4(b) ?? b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function table(rows: ReadonlyArray<readonly [string, AddressScope]>): ReadonlyArray<[Cidr, AddressScope]> {
  return rows.map(([c, s]) => [parseCidr(c) as Cidr, s]);
}

/** Cloud instance metadata services; checked before the ranges that contain them. */
const METADATA_ADDRESSES: readonly string[] = [
  "169.254.169.254",
  "169.254.170.2",
  "100.100.100.200",
  "192.0.0.192",
  // Azure WireServer (agent and health endpoints, reachable from every VM)
  "168.63.129.16",
  "fd00:ec2::254",
];

// First match wins.
const V4 = table([
  ...METADATA_ADDRESSES.filter((a) => !a.includes(":")).map((a) => [`${a}/32`, "metadata"] as const),
  ["0.0.0.0/32", "unspecified"],
  ["0.0.0.0/8", "reserved"],
  ["127.0.0.0/8", "loopback"],
  ["10.0.0.0/8", "private"],
  ["172.16.0.0/12", "private"],
  ["192.168.0.0/16", "private"],
  ["169.254.0.0/16", "link-local"],
  ["100.64.0.0/10", "shared"],
  ["192.0.0.0/24", "reserved"],
  ["192.0.2.0/24", "reserved"],
  ["198.18.0.0/15", "reserved"],
  ["198.51.100.0/24", "reserved"],
  ["203.0.113.0/24", "reserved"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
]);

const V6 = table([
  ...METADATA_ADDRESSES.filter((a) => a.includes(":")).map((a) => [`${a}/128`, "metadata"] as const),
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  // The rest of ::/96 that is not read as IPv4-compatible (::2 to ::ff).
  ["::/96", "reserved"],
  ["64:ff9b:1::/48", "reserved"],
  ["100::/64", "reserved"],
  ["2001::/32", "reserved"],
  ["2001:db8::/32", "reserved"],
  ["fc00::/7", "private"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "reserved"],
  ["ff00::/8", "multicast"],
]);

/** Where an address points. Anything not public is refused as a destination unless allowed. */
export function addressScope(addr: IpBytes): AddressScope {
  if (addr.length === 16) {
    const v4 = embeddedIpv4(addr);
    if (v4 !== undefined) return addressScope(v4);
  }
  for (const [cidr, scope] of addr.length === 4 ? V4 : V6) if (inCidr(addr, cidr)) return scope;
  return "public";
}
