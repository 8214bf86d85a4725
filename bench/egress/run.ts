/**
 * What an egress policy costs, against a real driver (runc) and the egress tests' outside
 * namespace (a DNS server and HTTP servers on this machine; test/harness/egress-outside.ts):
 *
 * 1. Sandbox start to exit of `true` with networking: without rules (the raw baseline) and with
 *    an allow list (resolver + nftables chain and sets installed, and removed at destroy).
 * 2. 50 DNS lookups in one sandbox: straight to the upstream server (no rules) and through the
 *    sandbox's own resolver (allowed name: upstream asked, answer filtered, address added to the
 *    nftables set before the reply).
 *
 * Prints medians and the ratio to the baseline.
 *
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/egress/run.ts
 *   BENCH_N=15 bash scripts/in-private-mount-ns.sh npx tsx bench/egress/run.ts
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildBusyboxRootfs } from "../../packages/server/src/runtime/busybox.js";
import { EgressPolicy, type EgressRules } from "../../packages/server/src/runtime/egress-policy.js";
import { removeFirewallIfUnused } from "../../packages/server/src/runtime/network.js";
import { RuncDriver } from "../../packages/server/src/runtime/oci/runc-driver.js";
import { mountRootfs, unmount } from "../../packages/server/src/sys/overlay-mount.js";
import { startEgressOutside } from "../../packages/server/test/harness/egress-outside.js";

const N = Number(process.env["BENCH_N"] ?? 15);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

async function main(): Promise<void> {
  const outside = await startEgressOutside((h) => ({ "allowed.test": [h[0] as string] }));
  const root = await mkdtemp(path.join(tmpdir(), "bench-egress-"));
  try {
    await chmod(root, 0o711);
    const base = path.join(root, "base");
    await buildBusyboxRootfs(base);
    const driver = new RuncDriver({
      stateDir: path.join(root, "state"),
      egress: { dnsServers: [outside.dns] },
    });
    let seq = 0;
    const once = async (script: string, rules: EgressRules | null): Promise<{ ms: number; out: string }> => {
      const n = ++seq;
      const dir = path.join(root, `r${n}`);
      const merged = path.join(dir, "merged");
      await mountRootfs({
        lowers: [base],
        upper: path.join(dir, "u"),
        work: path.join(dir, "w"),
        target: merged,
      });
      const t0 = performance.now();
      const sb = await driver.start({
        id: `bench-eg-${process.pid}-${n}`,
        rootfs: merged,
        bundleDir: path.join(dir, "bundle"),
        hostname: "b",
        network: "egress",
        ...(rules === null ? {} : { egressPolicy: { policy: EgressPolicy.of(rules) } }),
        limits: { memoryBytes: 256 * 1024 * 1024, pids: 256 },
        stdin: "null",
        process: { args: ["/bin/sh", "-c", script], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
      });
      let out = "";
      sb.stdout.on("data", (b: Buffer) => {
        out += b.toString();
      });
      sb.stderr.resume();
      await sb.wait();
      await sb.destroy();
      const ms = performance.now() - t0;
      await unmount(merged);
      await rm(dir, { recursive: true, force: true });
      return { ms, out };
    };
    const policy = { allow: ["allowed.test"] };
    // Warm-up (firewall chains, nft table, page cache).
    await once("true", null);
    await once("true", policy);
    const plain: number[] = [];
    const policed: number[] = [];
    for (let i = 0; i < N; i++) {
      plain.push((await once("true", null)).ms);
      policed.push((await once("true", policy)).ms);
    }
    const lookups = "for i in $(seq 1 50); do nslookup allowed.test >/dev/null 2>&1 || echo miss; done";
    // Per lookup: (a sandbox doing 50 lookups − the same sandbox doing nothing) / 50.
    const per = async (rules: EgressRules | null, baseline: number) => {
      const xs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { ms, out } = await once(lookups, rules);
        if (out.includes("miss")) throw new Error(`a lookup failed: ${out}`);
        xs.push((ms - baseline) / 50);
      }
      return median(xs);
    };
    const p = median(plain);
    const q = median(policed);
    const dnsPlain = await per(null, p);
    const dnsPoliced = await per(policy, q);
    console.log(`sandbox start→exit (runc, networking), median of ${N}:`);
    console.log(`  no rules (baseline)  ${p.toFixed(1)} ms`);
    console.log(
      `  allow list           ${q.toFixed(1)} ms  (×${(q / p).toFixed(2)}, +${(q - p).toFixed(1)} ms)`,
    );
    console.log(
      "DNS lookup inside the sandbox (busybox nslookup, per lookup incl. process start), median of 5×50:",
    );
    console.log(`  upstream directly    ${dnsPlain.toFixed(2)} ms`);
    console.log(
      `  sandbox's resolver   ${dnsPoliced.toFixed(2)} ms  (×${(dnsPoliced / dnsPlain).toFixed(2)})`,
    );
  } finally {
    await outside.stop();
    await removeFirewallIfUnused().catch(() => false);
    await rm(root, { recursive: true, force: true });
  }
}

await main();
