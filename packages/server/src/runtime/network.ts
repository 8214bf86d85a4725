/**
 * Egress networking for sandboxes: a per-sandbox netns (`ctr-<id>`) joined to the host by a
 * veth pair (`cnv<N>` on the host, `eth0` inside) on its own /30, NATed out.
 *
 * One set of firewall chains, keyed on the `cnv+` interface wildcard, guards every sandbox:
 *  - INPUT from a sandbox is dropped: the host itself (any of its addresses, its loopback
 *    services via the gateway) is unreachable.
 *  - FORWARD from a sandbox: allowed DNS servers on port 53, then private, loopback,
 *    link-local, CGNAT, multicast/reserved ranges and the host's own LAN(s) are dropped,
 *    the rest (public egress) is accepted. Nothing may open connections into a sandbox.
 *  - IPv6 from sandboxes is dropped entirely (and disabled on the host-side veth).
 * Rules are replaced atomically with iptables-restore under a host-wide lock, so concurrent
 * servers (or test workers) converge on the same rules.
 */

import { readdirSync } from "node:fs";
import { readFile, unlink, writeFile } from "node:fs/promises";
import { internal } from "../core/errors.js";
import { type CommandOptions, type CommandResult, runCommand } from "../sys/run-command.js";
import { RELEASE_MARK, REMOVE_EGRESS_TABLE_SH } from "./egress-firewall.js";
import { NAME_PREFIX } from "./runtime-driver.js";

export interface EgressConfig {
  /** Dedicated IPv4 range carved into /30s, one per sandbox. Must lie inside a blocked private range. */
  subnet: string;
  /** Resolvers sandboxes may query on port 53 (IPv4). */
  dnsServers: string[];
  /** More destinations to refuse, on top of the built-in list and the host's own LANs. */
  extraBlocked?: string[];
  /**
   * Blocked IPv4 ranges (labs, tests) that runs whose egress policy allows them may reach: the
   * policy's chain marks such packets (RELEASE_MARK) and CONTREE-FWD accepts them before its drops.
   */
  released?: string[];
}

export interface EgressNetwork {
  nsName: string;
  nsPath: string;
  vethHost: string;
  address: string;
  gateway: string;
}

const VETH_PREFIX = "cnv";
const LOCK = "/run/contree-net.lock";
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";
const IP_FORWARD_SAVED = "/run/contree-net.ip_forward";
const CHAIN_IN = "CONTREE-IN";
const CHAIN_FWD = "CONTREE-FWD";
const CHAIN_NAT = "CONTREE-NAT";

/** Destinations a sandbox must never reach (RFC 1918, loopback, link-local, CGNAT, reserved). */
const BLOCKED_RANGES = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/** Is `ip` on the built-in list, or on `extra`? (The resolver drops such answers: rebinding.) */
export function isBlockedAddress(ip: string, extra: readonly string[] = []): boolean {
  return inRanges(ip, [...BLOCKED_RANGES, ...extra], true);
}

/** Is `ip` (IPv4) in one of `ranges`? `invalid` is the answer for what is not an address. */
export function inRanges(ip: string, ranges: readonly string[], invalid = false): boolean {
  let n: number;
  try {
    n = ipToInt(ip);
  } catch {
    return invalid;
  }
  return ranges.some((r) => {
    const { base, bits } = parseCidr(r);
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return (n & mask) >>> 0 === base;
  });
}

function releasedRule(range: string): string {
  return `-i ${VETH_PREFIX}+ -d ${range} -m mark --mark ${RELEASE_MARK}/${RELEASE_MARK} -j ACCEPT`;
}

function ipToInt(ip: string): number {
  const p = ip.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw internal(`bad IPv4 address`);
  return (
    (((p[0] as number) << 24) | ((p[1] as number) << 16) | ((p[2] as number) << 8) | (p[3] as number)) >>> 0
  );
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function parseCidr(cidr: string): { base: number; bits: number } {
  const [ip, b] = cidr.split("/");
  const bits = Number(b);
  if (ip === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) throw internal("bad CIDR");
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (ipToInt(ip) & mask) >>> 0, bits };
}

/**
 * IPv4 nameservers of the host's resolv.conf that a netns can reach (loopback stubs cannot);
 * with `loopback`, those too (for the server's own resolver, which runs on the host).
 */
export async function hostDnsServers(file = "/etc/resolv.conf", loopback = false): Promise<string[]> {
  try {
    const text = await readFile(file, "utf8");
    return [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)]
      .map((m) => m[1] as string)
      .filter((ip) => loopback || !ip.startsWith("127."));
  } catch {
    return [];
  }
}

/** Networks on the host's default-route interfaces (its LAN: neighbours, gateways, metadata). */
async function hostLans(): Promise<string[]> {
  const routes = await runCommand("ip", ["-4", "-o", "route", "show", "default"]);
  const devs = new Set([...routes.stdout.matchAll(/\bdev\s+(\S+)/g)].map((m) => m[1] as string));
  const out: string[] = [];
  for (const dev of devs) {
    const r = await runCommand("ip", ["-4", "-o", "addr", "show", "dev", dev]);
    for (const m of r.stdout.matchAll(/\binet\s+(\d+\.\d+\.\d+\.\d+)\/(\d+)/g)) {
      const { base, bits } = parseCidr(`${m[1]}/${m[2]}`);
      out.push(`${intToIp(base)}/${bits}`);
      out.push(`${m[1]}/32`);
    }
  }
  return out;
}

function firewallRules(cfg: EgressConfig, lans: string[]): { v4: string; v6: string } {
  const w = `${VETH_PREFIX}+`;
  const f: string[] = ["*filter", `:${CHAIN_IN} - [0:0]`, `:${CHAIN_FWD} - [0:0]`];
  f.push(`-A ${CHAIN_IN} ${DNS_REDIRECT_IN}`);
  f.push(`-A ${CHAIN_IN} -j DROP`);
  f.push(`-A ${CHAIN_FWD} -o ${w} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`);
  f.push(`-A ${CHAIN_FWD} -o ${w} -j DROP`);
  for (const dns of cfg.dnsServers) {
    for (const proto of ["udp", "tcp"])
      f.push(`-A ${CHAIN_FWD} -i ${w} -d ${dns}/32 -p ${proto} --dport 53 -j ACCEPT`);
  }
  for (const r of cfg.released ?? []) f.push(`-A ${CHAIN_FWD} ${releasedRule(r)}`);
  for (const r of [...BLOCKED_RANGES, ...lans, ...(cfg.extraBlocked ?? [])])
    f.push(`-A ${CHAIN_FWD} -i ${w} -d ${r} -j DROP`);
  f.push(`-A ${CHAIN_FWD} -i ${w} -j ACCEPT`, "COMMIT");
  const { base, bits } = parseCidr(cfg.subnet);
  const n = [
    "*nat",
    `:${CHAIN_NAT} - [0:0]`,
    `-A ${CHAIN_NAT} -s ${intToIp(base)}/${bits} ! -o ${w} -j MASQUERADE`,
    "COMMIT",
  ];
  const v6 = [
    "*filter",
    `:${CHAIN_IN} - [0:0]`,
    `:${CHAIN_FWD} - [0:0]`,
    `-A ${CHAIN_IN} -j DROP`,
    `-A ${CHAIN_FWD} -j DROP`,
    "COMMIT",
  ];
  return { v4: `${f.join("\n")}\n${n.join("\n")}\n`, v6: `${v6.join("\n")}\n` };
}

function jumpScript(): string {
  const w = `${VETH_PREFIX}+`;
  const jumps: Array<[string, string, string]> = [
    ["iptables", "filter", `INPUT -i ${w} -j ${CHAIN_IN}`],
    ["iptables", "filter", `FORWARD -i ${w} -j ${CHAIN_FWD}`],
    ["iptables", "filter", `FORWARD -o ${w} -j ${CHAIN_FWD}`],
    ["iptables", "nat", `POSTROUTING -j ${CHAIN_NAT}`],
    ["ip6tables", "filter", `INPUT -i ${w} -j ${CHAIN_IN}`],
    ["ip6tables", "filter", `FORWARD -i ${w} -j ${CHAIN_FWD}`],
    ["ip6tables", "filter", `FORWARD -o ${w} -j ${CHAIN_FWD}`],
  ];
  return jumps
    .map(([bin, table, rule]) => {
      const [chain, ...rest] = rule.split(" ");
      return `${bin} -w -t ${table} -C ${rule} 2>/dev/null || ${bin} -w -t ${table} -I ${chain} 1 ${rest.join(" ")}`;
    })
    .join("\n");
}

/** Installs (or atomically refreshes) the chains and jumps. */
async function ensureFirewall(cfg: EgressConfig): Promise<void> {
  const rules = firewallRules(cfg, await hostLans());
  const script = [
    "set -e",
    `iptables-restore -w --noflush <<'EOF4'\n${rules.v4}EOF4`,
    `ip6tables-restore -w --noflush <<'EOF6'\n${rules.v6}EOF6`,
    jumpScript(),
  ].join("\n");
  await mustRun("flock", [LOCK, "sh", "-c", script], "firewall setup");
}

const FIREWALL_MISSING = 42;

/**
 * The one way into the host from a sandbox: traffic an egress policy's nat rule redirected to the
 * veth's own address (its DNS, to the server's resolver for it; egress-firewall.ts). Nothing
 * else redirects traffic from a sandbox, so other sandboxes still reach nothing on the host.
 */
const DNS_REDIRECT_IN = "-m conntrack --ctstate DNAT -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT";

/**
 * Creates the veth pair under the firewall lock, after checking the chains are hooked in: a
 * concurrent removeFirewallIfUnused() (which needs "no veth left") cannot slip in between.
 */
async function addVethGuarded(
  vethHost: string,
  nsName: string,
  cfg: EgressConfig,
): Promise<"ok" | "exists" | "no-firewall"> {
  const w = `${VETH_PREFIX}+`;
  const released = (cfg.released ?? []).map(
    (r) => ` && iptables -w -C ${CHAIN_FWD} ${releasedRule(r)} 2>/dev/null`,
  );
  const script = `iptables -w -C INPUT -i ${w} -j ${CHAIN_IN} 2>/dev/null && iptables -w -C FORWARD -i ${w} -j ${CHAIN_FWD} 2>/dev/null && iptables -w -C ${CHAIN_IN} ${DNS_REDIRECT_IN} 2>/dev/null${released.join("")} || exit ${FIREWALL_MISSING}
exec ip link add "$0" type veth peer name eth0 netns "$1"`;
  const r = await runCommand("flock", [LOCK, "sh", "-c", script, vethHost, nsName]);
  if (r.code === 0) return "ok";
  if (r.code === FIREWALL_MISSING) return "no-firewall";
  if (/exists/i.test(r.stderr)) return "exists";
  throw internal("veth setup failed", { cause: new Error(r.stderr) });
}

/** Removes chains and jumps, but only when no sandbox veth is left on the host. */
export async function removeFirewallIfUnused(): Promise<boolean> {
  const script = `
set -e
if ls /sys/class/net | grep -q '^${VETH_PREFIX}'; then exit 3; fi
for spec in "iptables filter INPUT" "iptables filter FORWARD" "iptables nat POSTROUTING" "ip6tables filter INPUT" "ip6tables filter FORWARD"; do
  set -- $spec
  $1 -w -t $2 -S $3 | grep -- '-j CONTREE-' | sed 's/^-A /-D /' | while read -r r; do eval "$1 -w -t $2 $r"; done
done
for c in ${CHAIN_IN} ${CHAIN_FWD}; do
  iptables -w -F $c 2>/dev/null && iptables -w -X $c || true
  ip6tables -w -F $c 2>/dev/null && ip6tables -w -X $c || true
done
iptables -w -t nat -F ${CHAIN_NAT} 2>/dev/null && iptables -w -t nat -X ${CHAIN_NAT} || true
${REMOVE_EGRESS_TABLE_SH}
`;
  const r = await runCommand("flock", [LOCK, "sh", "-c", script]);
  if (r.code === 3) return false;
  if (r.code !== 0) throw internal("firewall teardown failed", { cause: new Error(r.stderr) });
  try {
    const saved = (await readFile(IP_FORWARD_SAVED, "utf8")).trim();
    if (saved === "0" || saved === "1") await writeFile(IP_FORWARD, saved);
    await unlink(IP_FORWARD_SAVED);
  } catch {
    // nothing saved: we never turned forwarding on
  }
  return true;
}

function netnsName(id: string): string {
  return `${NAME_PREFIX}${id}`;
}

/** Creates the netns, veth pair, addresses and default route. */
export async function setupEgress(id: string, cfg: EgressConfig): Promise<EgressNetwork> {
  // Host-global and required for NAT; the chains confine what it permits for sandboxes. The
  // value before the first sandbox is kept so that removeFirewallIfUnused() can restore it.
  const before = (await readFile(IP_FORWARD, "utf8")).trim();
  await writeFile(IP_FORWARD_SAVED, before, { flag: "wx" }).catch(() => undefined);
  await writeFile(IP_FORWARD, "1");
  const nsName = netnsName(id);
  await mustRun("ip", ["netns", "add", nsName], "netns setup");
  try {
    const { base, bits } = parseCidr(cfg.subnet);
    const slots = 2 ** (32 - bits) / 4;
    const start = Math.floor(Math.random() * slots);
    for (let k = 0; k < slots; k++) {
      const slot = (start + k) % slots;
      const vethHost = `${VETH_PREFIX}${slot}`;
      const gateway = intToIp(base + slot * 4 + 1);
      const address = intToIp(base + slot * 4 + 2);
      // The kernel refuses a duplicate interface name: that is our allocation lock.
      let add = await addVethGuarded(vethHost, nsName, cfg);
      if (add === "no-firewall") {
        await ensureFirewall(cfg);
        add = await addVethGuarded(vethHost, nsName, cfg);
      }
      if (add === "exists") continue;
      if (add !== "ok") throw internal("firewall is not in place");
      await writeFile(`/proc/sys/net/ipv6/conf/${vethHost}/disable_ipv6`, "1").catch(() => undefined);
      await mustRun("ip", ["-batch", "-"], "veth setup", {
        input: `addr add ${gateway}/30 dev ${vethHost}\nlink set ${vethHost} up\n`,
      });
      await mustRun("ip", ["-n", nsName, "-batch", "-"], "netns setup", {
        input: `addr add ${address}/30 dev eth0\nlink set eth0 up\nlink set lo up\nroute add default via ${gateway}\n`,
      });
      return { nsName, nsPath: `/run/netns/${nsName}`, vethHost, address, gateway };
    }
    throw internal("no free sandbox subnet");
  } catch (e) {
    await teardownNetns(nsName);
    throw e;
  }
}

/** Deleting the netns deletes the sandbox end of the veth, and with it the host end. */
export async function teardownNetns(nsName: string): Promise<void> {
  const r = await runCommand("ip", ["netns", "del", nsName]);
  if (r.code !== 0 && !/No such file/i.test(r.stderr)) {
    throw internal("netns teardown failed", { cause: new Error(r.stderr) });
  }
}

export function listSandboxNetns(): string[] {
  try {
    return readdirSync("/run/netns").filter((n) => n.startsWith(NAME_PREFIX));
  } catch {
    return [];
  }
}

export function resolvConf(dnsServers: string[]): string {
  return dnsServers.map((s) => `nameserver ${s}\n`).join("");
}

/** Like runCommand but a non-zero exit is an internal error (message without host detail). */
async function mustRun(
  file: string,
  args: readonly string[],
  what: string,
  o: CommandOptions = {},
): Promise<CommandResult> {
  const r = await runCommand(file, args, o);
  if (r.code !== 0) {
    throw internal(`${what} failed`, {
      cause: new Error(`${file} ${args.join(" ")} → ${r.code ?? r.signal}: ${r.stderr.trim()}`),
    });
  }
  return r;
}
