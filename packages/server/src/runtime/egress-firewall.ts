/**
 * The nftables side of egress policies (table `ip contree_egress`), keyed on a sandbox's host
 * veth `cnvN`. It adds to the iptables chains of network.ts (which still refuse private ranges
 * and the host for every sandbox: a packet must pass both):
 *  - forward: `iifname vmap @sb_fwdmap` jumps to the sandbox's chain `f_cnvN`, which passes
 *    established flows, drops port 53 to anyone (only our resolver answers), drops denied
 *    CIDRs, accepts destinations in `a_cnvN` (addresses the resolver gave for allowed names,
 *    each with its record's TTL) or `n_cnvN` (allowed CIDRs), and drops the rest; without an
 *    allow list it accepts what is not denied. Drops are recorded in `x_cnvN`, which the guard
 *    reads to report them.
 *  - prerouting (nat): `p_cnvN` redirects DNS to the gateway, port 53, to the resolver's
 *    sockets on the gateway address; iptables' CONTREE-IN lets in exactly such redirected
 *    traffic to the veth's own address (network.ts).
 * Every change is one `nft -f` batch, applied atomically.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { internal } from "../core/errors.js";
import { runCommand } from "../sys/run-command.js";

const T = "ip contree_egress";
const MARKER = "/run/contree-egress.nft";
/** How long a denied destination stays recorded (the guard reads the set far more often). */
const DENIED_TTL = "2m";
export const DENIED_SET_SIZE = 1024;
/**
 * The packet-mark bit set on a policed sandbox's packets to a released range (network.ts
 * `released`): CONTREE-FWD accepts those before its drops. Used on no other packet.
 */
export const RELEASE_MARK = "0x200000";

export interface SandboxFirewallSpec {
  vethHost: string;
  gateway: string;
  /** null: no allow list (everything not denied). */
  allowCidrs: string[] | null;
  denyCidrs: string[];
  udpPort: number;
  tcpPort: number;
  /** Blocked ranges an allowed destination may still lie in (network.ts `released`). */
  released: string[];
}

export interface DeniedFlow {
  address: string;
  protocol: "tcp" | "udp";
  port: number;
}

function names(veth: string) {
  if (!/^cnv\d{1,6}$/.test(veth)) throw internal("bad sandbox interface name");
  return { f: `f_${veth}`, p: `p_${veth}`, a: `a_${veth}`, n: `n_${veth}`, d: `d_${veth}`, x: `x_${veth}` };
}

function setSpecs(veth: string): Array<[string, string]> {
  const s = names(veth);
  return [
    [s.a, "{ type ipv4_addr; flags timeout; }"],
    [s.n, "{ type ipv4_addr; flags interval; }"],
    [s.d, "{ type ipv4_addr; flags interval; }"],
    [
      s.x,
      `{ type ipv4_addr . inet_proto . inet_service; flags dynamic,timeout; timeout ${DENIED_TTL}; size ${DENIED_SET_SIZE}; }`,
    ],
  ];
}

/**
 * The table, its hooks and the `released` set; with `released` given, the set is refilled (the
 * last server to install a policy sets it), else left as it is.
 */
function base(released: string[] | null): string[] {
  const lines = [
    `add table ${T}`,
    `add map ${T} sb_fwdmap { type ifname : verdict; }`,
    `add map ${T} sb_premap { type ifname : verdict; }`,
    `add set ${T} released { type ipv4_addr; flags interval; }`,
    `add chain ${T} sb_fwd { type filter hook forward priority -1; policy accept; }`,
    `add chain ${T} sb_pre { type nat hook prerouting priority -110; policy accept; }`,
    `flush chain ${T} sb_fwd`,
    `add rule ${T} sb_fwd iifname vmap @sb_fwdmap`,
    `flush chain ${T} sb_pre`,
    `add rule ${T} sb_pre iifname vmap @sb_premap`,
  ];
  if (released !== null) {
    lines.push(`flush set ${T} released`);
    if (released.length > 0) lines.push(`add element ${T} released { ${released.join(", ")} }`);
  }
  return lines;
}

async function nft(script: string, what: string): Promise<void> {
  const r = await runCommand("nft", ["-f", "-"], { input: script });
  if (r.code !== 0) throw internal(`${what} failed`, { cause: new Error(r.stderr.trim()) });
}

/** Lines that remove whatever a sandbox on this veth had (none of them fails when it had nothing). */
function removal(veth: string): string[] {
  const s = names(veth);
  const out = [
    `add chain ${T} ${s.f}`,
    `add chain ${T} ${s.p}`,
    `add element ${T} sb_fwdmap { "${veth}" : jump ${s.f} }`,
    `add element ${T} sb_premap { "${veth}" : jump ${s.p} }`,
    `delete element ${T} sb_fwdmap { "${veth}" }`,
    `delete element ${T} sb_premap { "${veth}" }`,
    `flush chain ${T} ${s.f}`,
    `delete chain ${T} ${s.f}`,
    `flush chain ${T} ${s.p}`,
    `delete chain ${T} ${s.p}`,
  ];
  for (const [name, spec] of setSpecs(veth))
    out.push(`add set ${T} ${name} ${spec}`, `delete set ${T} ${name}`);
  return out;
}

/** Installs a sandbox's policy (replacing anything a crashed predecessor left on the same veth). */
export async function installSandboxFirewall(o: SandboxFirewallSpec): Promise<void> {
  const s = names(o.vethHost);
  const lines = [
    ...base(o.released),
    ...removal(o.vethHost),
    `add chain ${T} ${s.f}`,
    `add chain ${T} ${s.p}`,
  ];
  for (const [name, spec] of setSpecs(o.vethHost)) lines.push(`add set ${T} ${name} ${spec}`);
  if (o.allowCidrs !== null && o.allowCidrs.length > 0)
    lines.push(`add element ${T} ${s.n} { ${o.allowCidrs.join(", ")} }`);
  if (o.denyCidrs.length > 0) lines.push(`add element ${T} ${s.d} { ${o.denyCidrs.join(", ")} }`);
  const upd = `update @${s.x} { ip daddr . meta l4proto . th dport }`;
  const f = (rule: string) => lines.push(`add rule ${T} ${s.f} ${rule}`);
  // A released range is reachable only with the mark (CONTREE-FWD checks it): set here, for a
  // connection the policy let start, and for its later packets.
  const mark = `ip daddr @released meta mark set mark or ${RELEASE_MARK}`;
  // Only an allow list can let a released range through (it must name it).
  const released = o.released.length > 0 && o.allowCidrs !== null;
  if (released) f(`ct state established,related ${mark} accept`);
  f("ct state established,related accept");
  f(`meta l4proto { tcp, udp } th dport 53 ${upd}`);
  f("meta l4proto { tcp, udp } th dport 53 drop");
  f(`ip daddr @${s.d} meta l4proto { tcp, udp } ${upd}`);
  f(`ip daddr @${s.d} drop`);
  if (released) {
    f(`ip daddr @${s.a} ${mark}`);
    f(`ip daddr @${s.n} ${mark}`);
  }
  if (o.allowCidrs === null) f("accept");
  f(`ip daddr @${s.a} accept`);
  f(`ip daddr @${s.n} accept`);
  f(`meta l4proto { tcp, udp } ${upd}`);
  f("drop");
  const p = (rule: string) => lines.push(`add rule ${T} ${s.p} ${rule}`);
  p(`ip daddr ${o.gateway} udp dport 53 dnat to ${o.gateway}:${o.udpPort}`);
  p(`ip daddr ${o.gateway} tcp dport 53 dnat to ${o.gateway}:${o.tcpPort}`);
  lines.push(`add element ${T} sb_fwdmap { "${o.vethHost}" : jump ${s.f} }`);
  lines.push(`add element ${T} sb_premap { "${o.vethHost}" : jump ${s.p} }`);
  await writeFile(MARKER, "");
  await nft(`${lines.join("\n")}\n`, "egress policy setup");
}

/** Removes a sandbox's policy; idempotent. */
export async function removeSandboxFirewall(veth: string): Promise<void> {
  await nft(`${[...base(null), ...removal(veth)].join("\n")}\n`, "egress policy teardown");
}

/**
 * A sandbox without a policy must not inherit one a crashed server left on its veth: cleared
 * once the table has ever been made on this host (a marker file says so; no nft call otherwise).
 */
export async function clearStaleSandboxFirewall(veth: string): Promise<void> {
  if (existsSync(MARKER)) await removeSandboxFirewall(veth);
}

/** Lets the sandbox reach these addresses for `ttlSeconds` (refreshing earlier entries). */
export async function allowAddresses(veth: string, addresses: string[], ttlSeconds: number): Promise<void> {
  if (addresses.length === 0) return;
  const s = names(veth);
  const ips = addresses.join(", ");
  // `add` then `delete` never fails; the second `add` sets the new timeout.
  const lines = [
    `add element ${T} ${s.a} { ${ips} }`,
    `delete element ${T} ${s.a} { ${ips} }`,
    `add element ${T} ${s.a} { ${addresses.map((a) => `${a} timeout ${ttlSeconds}s`).join(", ")} }`,
  ];
  await nft(`${lines.join("\n")}\n`, "egress allow-set update");
}

/** The flows dropped recently (within the set's timeout). */
export async function deniedFlows(veth: string): Promise<DeniedFlow[]> {
  const s = names(veth);
  const r = await runCommand("nft", ["-j", "list", "set", ...T.split(" "), s.x]);
  if (r.code !== 0) return [];
  const out: DeniedFlow[] = [];
  try {
    const doc = JSON.parse(r.stdout) as { nftables?: Array<{ set?: { elem?: unknown[] } }> };
    for (const item of doc.nftables ?? []) {
      for (const e of item.set?.elem ?? []) {
        const v = (e as { elem?: { val?: unknown } }).elem?.val ?? e;
        const concat = (v as { concat?: unknown[] }).concat;
        if (!Array.isArray(concat) || concat.length !== 3) continue;
        const [address, proto, port] = concat;
        if (typeof address !== "string" || (proto !== "tcp" && proto !== "udp") || typeof port !== "number")
          continue;
        out.push({ address, protocol: proto, port });
      }
    }
  } catch {
    return [];
  }
  return out;
}

/** Drops the whole table; run by network.ts under its lock once no sandbox veth is left. */
export const REMOVE_EGRESS_TABLE_SH = `if [ -e ${MARKER} ]; then nft delete table ${T} 2>/dev/null || true; rm -f ${MARKER}; fi`;
