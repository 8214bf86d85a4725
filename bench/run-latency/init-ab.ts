/**
 * What the sandbox init (native/init.c) costs a run, A/B in one process so load drift hits both:
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/run-latency/init-ab.ts [--n 40] [--drivers crun,runsc]
 *
 * Each round runs `echo hi > /out` twice per driver over a busybox layer, in random order:
 *  A: the driver with `sandboxInit: false` (the command is the container's process itself);
 *  B: the default: the command under the init, its exit and rusage reported to the host.
 * Each is timed from the mount to the unmount (mount + start + wait + destroy + unmount).
 * Prints medians, p95 and B − A per driver.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildBusyboxRootfs } from "../../packages/server/src/runtime/busybox.js";
import { RunscDriver } from "../../packages/server/src/runtime/gvisor/runsc-driver.js";
import { CrunDriver } from "../../packages/server/src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../packages/server/src/runtime/oci/runc-driver.js";
import type { RuntimeDriver } from "../../packages/server/src/runtime/runtime-driver.js";
import { mountRootfs, unmount } from "../../packages/server/src/sys/overlay-mount.js";

const { values } = parseArgs({
  options: { n: { type: "string", default: "40" }, drivers: { type: "string", default: "crun,runsc" } },
});
const N = Number(values.n);
const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

const root = await mkdtemp(path.join(tmpdir(), "bench-init-"));
await chmod(root, 0o711);
const base = path.join(root, "base");
await buildBusyboxRootfs(base);

function make(name: string, stateDir: string, sandboxInit: boolean): RuntimeDriver {
  // Without user namespaces for crun: the A/B isolates the init (userns-ab.ts measures that).
  if (name === "crun") return new CrunDriver({ stateDir, sandboxInit, userNamespace: false });
  if (name === "runc") return new RuncDriver({ stateDir, sandboxInit });
  return new RunscDriver({ stateDir, sandboxInit, platform: "ptrace", statxFix: "on" });
}

let seq = 0;
async function once(d: RuntimeDriver): Promise<number> {
  const n = ++seq;
  const dir = path.join(root, "runs", String(n));
  const merged = path.join(dir, "rootfs");
  const t0 = performance.now();
  await mountRootfs({
    lowers: [base],
    upper: path.join(dir, "upper"),
    work: path.join(dir, "work"),
    target: merged,
  });
  const sb = await d.start({
    id: `bench${process.pid}-${n}`,
    rootfs: merged,
    bundleDir: path.join(dir, "bundle"),
    hostname: "bench",
    network: "none",
    limits: { memoryBytes: 256 * 1024 * 1024, pids: 128 },
    stdin: "null",
    process: { args: ["/bin/sh", "-c", "echo hi > /out"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
  });
  sb.stdout.resume();
  sb.stderr.resume();
  const st = await sb.wait();
  if (st.exitCode !== 0) throw new Error(`run failed: ${JSON.stringify(st)}`);
  await sb.destroy();
  await unmount(merged);
  const t = performance.now() - t0;
  await rm(dir, { recursive: true, force: true });
  return t;
}

console.log(`start: load ${load()}`);
const f = (x: number) => x.toFixed(2);
const rows: string[] = [];
for (const name of (values.drivers ?? "").split(",").filter(Boolean)) {
  const a = make(name, path.join(root, `${name}-a`), false);
  const b = make(name, path.join(root, `${name}-b`), true);
  for (let i = 0; i < 3; i++) {
    await once(a);
    await once(b);
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < N; i++) {
    const order = Math.random() < 0.5 ? [a, b] : [b, a];
    for (const d of order) (d === a ? ta : tb).push(await once(d));
  }
  rows.push(
    `| ${name} | ${f(q(ta, 0.5))} | ${f(q(ta, 0.95))} | ${f(q(tb, 0.5))} | ${f(q(tb, 0.95))} | ${f(q(tb, 0.5) - q(ta, 0.5))} |`,
  );
}
console.log(`echo hi > /out, mount → unmount, N=${N} each, interleaved (ms)`);
console.log("| driver | A: no init p50 | p95 | B: init p50 | p95 | B − A (p50) |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
console.log(`end: load ${load()}`);
await rm(root, { recursive: true, force: true });
