/**
 * What the user namespace costs a crun sandbox, A/B in one process so load drift hits both:
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/run-latency/userns-ab.ts [--n 40]
 *
 * Each round runs `echo hi > /out` twice over a busybox layer, in random order:
 *  A: plain overlay mount, crun without a user namespace;
 *  B: a user range lease, overlay with idmapped layers, crun in a user namespace.
 * Each is timed from the mount to the unmount (mount + start + wait + destroy + unmount), and the
 * mount alone. Prints medians, p95 and B/A ratios.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildBusyboxRootfs } from "../../packages/server/src/runtime/busybox.js";
import { CrunDriver } from "../../packages/server/src/runtime/oci/crun-driver.js";
import type { UserRangeLease } from "../../packages/server/src/runtime/userns.js";
import { mountRootfs, unmount } from "../../packages/server/src/sys/overlay-mount.js";

const { values } = parseArgs({ options: { n: { type: "string", default: "40" } } });
const N = Number(values.n);
const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

const root = await mkdtemp(path.join(tmpdir(), "bench-userns-"));
await chmod(root, 0o711);
const base = path.join(root, "base");
await buildBusyboxRootfs(base);
const plain = new CrunDriver({ stateDir: path.join(root, "state-a"), userNamespace: false });
const userns = new CrunDriver({ stateDir: path.join(root, "state-b") });
if (!userns.userNamespace) throw new Error("crun cannot use user namespaces here (native addon missing?)");

let seq = 0;
async function once(d: CrunDriver, withUserns: boolean): Promise<{ total: number; mount: number }> {
  const n = ++seq;
  const dir = path.join(root, "runs", String(n));
  const merged = path.join(dir, "rootfs");
  const t0 = performance.now();
  const lease: UserRangeLease | null = withUserns ? d.userRange() : null;
  await mountRootfs({
    lowers: [base],
    upper: path.join(dir, "upper"),
    work: path.join(dir, "work"),
    target: merged,
    ...(lease === null ? {} : { idmap: lease.range }),
  });
  const t1 = performance.now();
  const sb = await d.start({
    id: `bench${process.pid}-${n}`,
    rootfs: merged,
    bundleDir: path.join(dir, "bundle"),
    hostname: "bench",
    network: "none",
    limits: { memoryBytes: 256 * 1024 * 1024, pids: 128 },
    stdin: "null",
    process: { args: ["/bin/sh", "-c", "echo hi > /out"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
    ...(lease === null ? {} : { users: lease.range }),
  });
  sb.stdout.resume();
  sb.stderr.resume();
  const st = await sb.wait();
  if (st.exitCode !== 0) throw new Error(`run failed: ${JSON.stringify(st)}`);
  await sb.destroy();
  await unmount(merged);
  lease?.release();
  const t2 = performance.now();
  await rm(dir, { recursive: true, force: true });
  return { total: t2 - t0, mount: t1 - t0 };
}

console.log(`start: load ${load()}`);
for (let i = 0; i < 3; i++) {
  await once(plain, false);
  await once(userns, true);
}
const a = { total: [] as number[], mount: [] as number[] };
const b = { total: [] as number[], mount: [] as number[] };
for (let i = 0; i < N; i++) {
  const order = Math.random() < 0.5;
  for (const which of order ? ["a", "b"] : ["b", "a"]) {
    const r = which === "a" ? await once(plain, false) : await once(userns, true);
    const t = which === "a" ? a : b;
    t.total.push(r.total);
    t.mount.push(r.mount);
  }
}
const f = (x: number) => x.toFixed(2);
console.log(`crun, echo hi > /out, N=${N} each, interleaved (ms)`);
console.log("| variant | mount→unmount p50 | p95 | mount p50 |");
console.log("| --- | --- | --- | --- |");
console.log(
  `| A: no user namespace | ${f(q(a.total, 0.5))} | ${f(q(a.total, 0.95))} | ${f(q(a.mount, 0.5))} |`,
);
console.log(
  `| B: user namespace, idmapped layers | ${f(q(b.total, 0.5))} | ${f(q(b.total, 0.95))} | ${f(q(b.mount, 0.5))} |`,
);
console.log(
  `| B / A | ${(q(b.total, 0.5) / q(a.total, 0.5)).toFixed(2)}× | | ${(q(b.mount, 0.5) / q(a.mount, 0.5)).toFixed(2)}× |`,
);
console.log(`end: load ${load()}`);
await rm(root, { recursive: true, force: true });
