/**
 * Which network destinations imports may connect to (registries, their token realms, redirect
 * targets such as blob CDNs). Public addresses always; loopback, private, link-local, shared
 * (CGNAT), reserved, multicast, this host's own addresses and cloud metadata services only when
 * the operator lists them (`CONTREE_PRIVATE_REGISTRIES`):
 *   HOST[:PORT]      a registry name: its resolved addresses are allowed (on that port)
 *   IP[:PORT], [IPv6][:PORT]   one address (on that port)
 *   CIDR             a range of addresses, any port ("10.0.0.0/8", "fd00::/8")
 * A metadata address is allowed only when listed as that exact address (never by a range or a
 * name). The decision is made on the address actually connected to (guarded-connector.ts), so
 * a name that re-resolves between two lookups cannot slip past it.
 */
import { networkInterfaces } from "node:os";
import {
  type AddressScope,
  addressScope,
  type Cidr,
  type IpBytes,
  inCidr,
  parseCidr,
  parseIp,
  sameAddress,
} from "../core/net-address.js";

type Entry =
  | { readonly kind: "name"; readonly name: string; readonly port: number | undefined }
  | { readonly kind: "address"; readonly addr: IpBytes; readonly port: number | undefined }
  | { readonly kind: "range"; readonly cidr: Cidr };

export interface Destination {
  /** The host as the URL names it: a DNS name or an IP literal (without brackets). */
  readonly hostname: string;
  readonly port: number;
}

export type Verdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly scope: AddressScope | "local" };

/** Parses one allow-list entry; a string is the reason it is invalid. */
export function parseAllowEntry(text: string): Entry | string {
  const s = text.trim().toLowerCase();
  const bad = `${JSON.stringify(text)} is not HOST[:PORT], IP[:PORT], [IPv6][:PORT] or a CIDR range`;
  if (s.includes("/")) {
    const cidr = parseCidr(s);
    return cidr ? { kind: "range", cidr } : bad;
  }
  const port = (p: string | undefined): number | undefined | string => {
    if (p === undefined) return undefined;
    const n = Number(p);
    return /^\d{1,5}$/.test(p) && n >= 1 && n <= 65535 ? n : bad;
  };
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) {
    const addr = parseIp(bracketed[1] ?? "");
    const p = port(bracketed[2]);
    if (addr === undefined || typeof p === "string") return bad;
    return { kind: "address", addr, port: p };
  }
  const bare6 = parseIp(s);
  if (bare6 !== undefined && s.includes(":")) return { kind: "address", addr: bare6, port: undefined };
  const m = /^([a-z0-9.-]+)(?::(\d+))?$/.exec(s);
  if (!m) return bad;
  const host = (m[1] ?? "").replace(/\.$/, "");
  const p = port(m[2]);
  if (typeof p === "string" || host === "") return bad;
  const addr = parseIp(host);
  if (addr !== undefined) return { kind: "address", addr, port: p };
  if (/^[0-9.]+$/.test(host) || host.split(".").some((l) => l === "" || l.length > 63)) return bad;
  return { kind: "name", name: host, port: p };
}

export class DestinationPolicy {
  readonly #entries: readonly Entry[];
  readonly #localAddresses: () => readonly IpBytes[];

  /** Throws on an invalid entry (the configuration loader reports them first). */
  constructor(allow: readonly string[] = [], localAddresses: () => readonly IpBytes[] = hostAddresses) {
    this.#entries = allow.map((e) => {
      const parsed = parseAllowEntry(e);
      if (typeof parsed === "string") throw new Error(parsed);
      return parsed;
    });
    this.#localAddresses = localAddresses;
  }

  /** Whether a connection to `address` (what `to.hostname` resolved to) may be made. */
  check(to: Destination, address: string): Verdict {
    const addr = parseIp(address);
    if (addr === undefined) return { allowed: false, scope: "reserved" };
    const scope = addressScope(addr);
    const local = this.#localAddresses().some((a) => sameAddress(a, addr));
    if (scope === "public" && !local) return { allowed: true };
    const name = to.hostname.toLowerCase().replace(/\.$/, "");
    const portOk = (p: number | undefined) => p === undefined || p === to.port;
    const listed = this.#entries.some((e) => {
      if (e.kind === "address") return sameAddress(e.addr, addr) && portOk(e.port);
      if (scope === "metadata") return false;
      if (e.kind === "range") return inCidr(addr, e.cidr);
      return e.name === name && portOk(e.port);
    });
    return listed ? { allowed: true } : { allowed: false, scope: local ? "local" : scope };
  }
}

/** Every address of this host's interfaces: reaching them is reaching the server itself. */
function hostAddresses(): IpBytes[] {
  const out: IpBytes[] = [];
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) {
      const b = parseIp(a.address);
      if (b !== undefined) out.push(b);
    }
  return out;
}
