/**
 * Egress policies enforced at the host end of a sandbox's veth, on every driver: the sandbox's
 * DNS goes to the server's resolver for it, which answers only allowed names and hands their
 * addresses to the firewall; everything else the sandbox tries is dropped and reported.
 * The "outside" is a network namespace of this test (egress-outside.ts): no packet leaves the host.
 */
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBusyboxRootfs } from "../../src/runtime/busybox.js";
import { buildQuery, TYPE_A } from "../../src/runtime/dns-message.js";
import type { EgressDenial } from "../../src/runtime/egress-guard.js";
import { EgressPolicy, type EgressRules } from "../../src/runtime/egress-policy.js";
import { RunscDriver } from "../../src/runtime/gvisor/runsc-driver.js";
import { removeFirewallIfUnused } from "../../src/runtime/network.js";
import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../src/runtime/oci/runc-driver.js";
import type { RuntimeDriver } from "../../src/runtime/runtime-driver.js";
import { mountRootfs, unmount } from "../../src/sys/overlay-mount.js";
import { runCommand } from "../../src/sys/run-command.js";
import { type EgressOutside, startEgressOutside } from "../harness/egress-outside.js";

const drivers: Array<[string, (stateDir: string, dns: string[], released?: string[]) => RuntimeDriver]> = [
  [
    "crun",
    (stateDir, dnsServers, released) => new CrunDriver({ stateDir, egress: { dnsServers, released } }),
  ],
  [
    "runc",
    (stateDir, dnsServers, released) => new RuncDriver({ stateDir, egress: { dnsServers, released } }),
  ],
  [
    "runsc",
    (stateDir, dnsServers, released) =>
      new RunscDriver({ stateDir, platform: "ptrace", statxFix: "on", egress: { dnsServers, released } }),
  ],
];

function text(s: Readable): () => string {
  let out = "";
  s.on("data", (b: Buffer) => {
    out += b.toString();
  });
  return () => out;
}

let outside: EgressOutside;
let root = "";
let base = "";
let seq = 0;

beforeAll(async () => {
  outside = await startEgressOutside((h, p) => ({
    "lab.test": [p[1] as string],
    "allowed.test": [h[0] as string],
    "denied.test": [h[1] as string],
    "api.wild.test": [h[3] as string],
    "rebind.test": ["10.0.0.5", "127.0.0.1"],
    "mixed.test": ["192.168.7.7", h[4] as string],
  }));
  root = await mkdtemp(path.join(tmpdir(), "egress-policy-"));
  await chmod(root, 0o711);
  base = path.join(root, "base");
  await buildBusyboxRootfs(base);
}, 60_000);

afterAll(async () => {
  await outside?.stop();
  await removeFirewallIfUnused().catch(() => false);
  if (root !== "") await rm(root, { recursive: true, force: true });
});

/** Runs `script` in a fresh sandbox under `rules`; its output and the denials it caused. */
async function run(
  driver: RuntimeDriver,
  script: string,
  rules: EgressRules | null,
): Promise<{ out: string; err: string; code: number; denials: EgressDenial[]; veth: string }> {
  const n = ++seq;
  const dir = path.join(root, `run-${n}`);
  const merged = path.join(dir, "merged");
  const lease = driver.userRange?.() ?? null;
  const denials: EgressDenial[] = [];
  await mountRootfs({
    lowers: [base],
    upper: path.join(dir, "upper"),
    work: path.join(dir, "work"),
    target: merged,
    ...(lease === null ? {} : { idmap: lease.range }),
  });
  let sandbox: Awaited<ReturnType<RuntimeDriver["start"]>> | null = null;
  try {
    sandbox = await driver.start({
      id: `eg${process.pid}-${driver.name}-${n}`,
      rootfs: merged,
      bundleDir: path.join(dir, "bundle"),
      hostname: "sandbox",
      network: "egress",
      ...(rules === null
        ? {}
        : { egressPolicy: { policy: EgressPolicy.of(rules), onDenied: (d) => denials.push(d) } }),
      limits: { memoryBytes: 256 * 1024 * 1024, pids: 256 },
      stdin: "null",
      process: { args: ["/bin/sh", "-c", script], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
      ...(lease === null ? {} : { users: lease.range }),
    });
    const out = text(sandbox.stdout);
    const err = text(sandbox.stderr);
    const st = await sandbox.wait();
    const gw = (sandbox.network.gateway ?? "0.0.0.1").split(".").map(Number) as number[];
    const veth = `cnv${((gw[2] as number) * 256 + (gw[3] as number) - 1) / 4}`;
    await sandbox.destroy();
    return { out: out(), err: err(), code: st.exitCode, denials, veth };
  } finally {
    await sandbox?.destroy().catch(() => undefined);
    await unmount(merged).catch(() => undefined);
    lease?.release();
    await rm(dir, { recursive: true, force: true });
  }
}

/** `name=<first address nslookup printed for it, or "none">` for each name. */
function lookups(names: string[], server = ""): string {
  return names
    .map(
      (n) =>
        `a=$(nslookup ${n} ${server} 2>/dev/null | sed -n '/^Name:/,$p' | sed -n 's/^Address[ 0-9]*: *\\([0-9.]*\\).*/\\1/p' | head -1); echo "dns ${n}=\${a:-none}"`,
    )
    .join("\n");
}

/** `http <label>=<body or "fail">` for a GET of http://<host>:8080/. */
function get(label: string, host: string): string {
  // busybox-static's wget crashes here; an HTTP/1.0 request by hand does the same.
  return `b=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} 8080 2>/dev/null | grep '^hello'); echo "http ${label}=\${b:-fail}"`;
}

for (const [name, make] of drivers) {
  const binary = name === "runsc" ? "/usr/bin/runsc" : `/usr/bin/${name}`;
  if (!existsSync(binary) && !existsSync(`/usr/sbin/${name}`)) continue;
  describe(`egress policy: ${name}`, () => {
    let driver: RuntimeDriver;
    beforeAll(() => {
      driver = make(path.join(root, `state-${name}`), [outside.dns]);
    });

    it("an allow list lets through allowed names and CIDRs only; rebinding, direct IPs and other resolvers fail", async () => {
      const [allowedIp, deniedIp, cidrIp, wildIp, mixedIp] = outside.hosts as [
        string,
        string,
        string,
        string,
        string,
      ];
      const r = await run(
        driver,
        [
          "cat /etc/resolv.conf",
          lookups([
            "allowed.test",
            "denied.test",
            "api.wild.test",
            "rebind.test",
            "mixed.test",
            "nowhere.test",
          ]),
          get("allowed", allowedIp),
          get("wild", wildIp),
          get("cidr", cidrIp),
          get("mixed", mixedIp),
          // Never resolved through the resolver (and the resolver refused its name).
          get("direct", deniedIp),
          // Another resolver, asked directly: UDP and TCP.
          lookups(["allowed.test"], outside.dns).replace("dns allowed.test", "other allowed.test"),
          `if nc -w 3 ${outside.dns} 53 </dev/null; then echo "tcp53=open"; else echo "tcp53=closed"; fi`,
        ].join("\n"),
        {
          allow: ["allowed.test", "*.wild.test", "rebind.test", "mixed.test", `${cidrIp}/32`, "denied.test"],
          deny: ["denied.test"],
        },
      );
      const gwLine = /nameserver (\S+)/.exec(r.out)?.[1] ?? "";
      expect(gwLine).toMatch(/^10\.231\./);
      expect(r.out).toContain(`dns allowed.test=${allowedIp}`);
      expect(r.out).toContain("dns denied.test=none");
      expect(r.out).toContain(`dns api.wild.test=${wildIp}`);
      expect(r.out).toContain("dns rebind.test=none");
      // The private address is dropped from the answer, the public one kept.
      expect(r.out).toContain(`dns mixed.test=${mixedIp}`);
      expect(r.out).toContain("dns nowhere.test=none");
      expect(r.out).toContain(`http allowed=hello ${allowedIp}`);
      expect(r.out).toContain(`http wild=hello ${wildIp}`);
      expect(r.out).toContain(`http cidr=hello ${cidrIp}`);
      expect(r.out).toContain(`http mixed=hello ${mixedIp}`);
      expect(r.out).toContain("http direct=fail");
      expect(r.out).toContain("other allowed.test=none");
      expect(r.out).toContain("tcp53=closed");
      const names = r.denials.map((d) => `${d.reason} ${d.destination}`);
      expect(names).toContain("denied_name denied.test");
      expect(names).toContain("denied_name nowhere.test");
      expect(names).toContain("private_answer rebind.test");
      expect(names).toContain("private_answer mixed.test");
      expect(names).toContain(`not_allowed ${deniedIp}:8080`);
      expect(names).toContain(`other_resolver ${outside.dns}:53`);
      // The sandbox's chain went with it.
      expect(
        (await runCommand("nft", ["list", "chain", "ip", "contree_egress", `f_${r.veth}`])).code,
      ).not.toBe(0);
      // The resolver never asked upstream about refused names.
      const asked = await outside.queries();
      expect(asked).not.toContain("denied.test");
      expect(asked).not.toContain("nowhere.test");
    }, 120_000);

    it("without an allow list, public egress stays and only denied rules are refused", async () => {
      const [allowedIp, deniedIp, cidrIp] = outside.hosts as [string, string, string];
      const r = await run(
        driver,
        [
          lookups(["allowed.test", "denied.test"]),
          get("allowed", allowedIp),
          get("direct", deniedIp),
          get("cidr", cidrIp),
        ].join("\n"),
        { deny: ["denied.test", `${cidrIp}/32`] },
      );
      expect(r.out).toContain(`dns allowed.test=${allowedIp}`);
      expect(r.out).toContain("dns denied.test=none");
      expect(r.out).toContain(`http allowed=hello ${allowedIp}`);
      // A name rule cannot know the address behind it: direct use of an undenied address works.
      expect(r.out).toContain(`http direct=hello ${deniedIp}`);
      expect(r.out).toContain("http cidr=fail");
      const names = r.denials.map((d) => `${d.reason} ${d.destination}`);
      expect(names).toContain("denied_name denied.test");
      expect(names).toContain(`denied_address ${cidrIp}:8080`);
    }, 120_000);

    it("a private range the operator released is reachable only by runs whose policy allows it", async () => {
      const lab = make(path.join(root, `state-${name}-lab`), [outside.dns], [outside.privateNet]);
      const [byCidr, byName] = outside.privates as [string, string];
      const script = [lookups(["lab.test", "rebind.test"]), get("name", byName), get("cidr", byCidr)].join(
        "\n",
      );
      const allowed = await run(lab, script, { allow: ["lab.test", `${byCidr}/32`, "rebind.test"] });
      expect(allowed.out).toContain(`dns lab.test=${byName}`);
      expect(allowed.out).toContain(`http name=hello ${byName}`);
      expect(allowed.out).toContain(`http cidr=hello ${byCidr}`);
      // Other private answers are still dropped.
      expect(allowed.out).toContain("dns rebind.test=none");
      const other = await run(lab, script, { allow: ["allowed.test"] });
      expect(other.out).toContain("dns lab.test=none");
      expect(other.out).toContain("http name=fail");
      expect(other.out).toContain("http cidr=fail");
      // Without an allow list naming it, and without a policy, the range stays refused.
      const denyOnly = await run(lab, script, { deny: ["x.test"] });
      expect(denyOnly.out).toContain("http name=fail");
      expect(denyOnly.out).toContain("http cidr=fail");
      const none = await run(lab, script, null);
      expect(none.out).toContain("http cidr=fail");
      // A driver without the release: the allowed range is refused.
      const plain = await run(driver, script, { allow: ["lab.test", `${byCidr}/32`] });
      expect(plain.out).toContain("dns lab.test=none");
      expect(plain.out).toContain("http cidr=fail");
    }, 180_000);

    it("the sandbox's resolver answers DNS over TCP too", async () => {
      const [allowedIp] = outside.hosts as [string];
      // A length-prefixed query as printf octal escapes (busybox has no DNS-over-TCP client).
      const octal = (name: string) => {
        const q = buildQuery(0x4242, { name, type: TYPE_A, cls: 1 });
        const framed = Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]);
        return [...framed].map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("");
      };
      const ask = (label: string, name: string) =>
        `echo "${label}=$( (printf '${octal(name)}'; sleep 1) | nc $gw 53 | od -An -tx1 | tr -d ' \\n')"`;
      const r = await run(
        driver,
        [
          "gw=$(sed -n 's/^nameserver //p' /etc/resolv.conf)",
          ask("allowed", "allowed.test"),
          ask("refused", "tcp-refused.test"),
        ].join("\n"),
        { allow: ["allowed.test"] },
      );
      const hex = (ip: string) =>
        ip
          .split(".")
          .map((x) => Number(x).toString(16).padStart(2, "0"))
          .join("");
      const allowed = /allowed=([0-9a-f]*)/.exec(r.out)?.[1] ?? "";
      // Our id, a response (0x81..), and the address as the answer's data.
      expect(allowed.slice(4, 8)).toBe("4242");
      expect(allowed.slice(8, 10)).toBe("81");
      expect(allowed.endsWith(`0004${hex(allowedIp)}`)).toBe(true);
      const refused = /refused=([0-9a-f]*)/.exec(r.out)?.[1] ?? "";
      // NXDOMAIN (rcode 3) and no answer.
      expect(refused.slice(4, 8)).toBe("4242");
      expect(Number.parseInt(refused.slice(10, 12), 16) & 15).toBe(3);
      expect(r.denials.map((d) => `${d.reason} ${d.destination}`)).toContain("denied_name tcp-refused.test");
    }, 120_000);

    it("reports at most 100 distinct denials per sandbox", async () => {
      const r = await run(
        driver,
        "for i in $(seq 1 150); do nslookup n$i.test >/dev/null 2>&1; done; echo done",
        { allow: ["allowed.test"] },
      );
      expect(r.out).toContain("done");
      expect(r.denials).toHaveLength(100);
      expect(new Set(r.denials.map((d) => d.destination)).size).toBe(100);
    }, 120_000);

    it("a sandbox without a policy keeps the host's resolvers and leaves no policy behind", async () => {
      const [allowedIp] = outside.hosts as [string];
      const r = await run(
        driver,
        ["cat /etc/resolv.conf", lookups(["allowed.test"]), get("allowed", allowedIp)].join("\n"),
        null,
      );
      expect(r.out).toContain(`nameserver ${outside.dns}`);
      expect(r.out).toContain(`dns allowed.test=${allowedIp}`);
      expect(r.out).toContain(`http allowed=hello ${allowedIp}`);
    }, 120_000);
  });
}
