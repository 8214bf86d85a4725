/**
 * What a terminal (ProcessSpec.tty, native/init-tty.h) costs, per driver, in one process so load
 * drift hits both sides:
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/terminal/tty-ab.ts [--n 30] [--drivers crun,runc,runsc]
 *
 *  1. A/B run: `echo hi` without (A) and with (B) a tty, interleaved in random order, each timed
 *     from the mount to the unmount (mount + start + wait + destroy + unmount).
 *  2. Keystroke round trip: in one tty sandbox running `cat`, the time from writing one byte (a
 *     data frame on the init's stdin) to reading its echo from the terminal's output, N times.
 * Prints medians and p95 per driver.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildBusyboxRootfs } from "../../packages/server/src/runtime/busybox.js";
import { RunscDriver } from "../../packages/server/src/runtime/gvisor/runsc-driver.js";
import { CrunDriver } from "../../packages/server/src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../packages/server/src/runtime/oci/runc-driver.js";
import type {
  RuntimeDriver,
  Sandbox,
  TerminalSize,
} from "../../packages/server/src/runtime/runtime-driver.js";
import { dataFrames } from "../../packages/server/src/runtime/terminal-frames.js";
import { mountRootfs, unmount } from "../../packages/server/src/sys/overlay-mount.js";

const { values } = parseArgs({
  options: { n: { type: "string", default: "30" }, drivers: { type: "string", default: "crun,runc,runsc" } },
});
const N = Number(values.n);
const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
const f = (x: number) => x.toFixed(2);

const root = await mkdtemp(path.join(tmpdir(), "bench-tty-"));
await chmod(root, 0o711);
const base = path.join(root, "base");
await buildBusyboxRootfs(base);

function make(name: string, stateDir: string): RuntimeDriver {
  if (name === "crun") return new CrunDriver({ stateDir, userNamespace: false });
  if (name === "runc") return new RuncDriver({ stateDir });
  return new RunscDriver({ stateDir, platform: "ptrace", statxFix: "on" });
}

let seq = 0;
async function start(d: RuntimeDriver, args: string[], tty?: TerminalSize) {
  const n = ++seq;
  const dir = path.join(root, "runs", String(n));
  const merged = path.join(dir, "rootfs");
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
    stdin: "pipe",
    process: { args, env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0, ...(tty ? { tty } : {}) },
  });
  const end = async (s: Sandbox) => {
    await s.destroy();
    await unmount(merged);
    await rm(dir, { recursive: true, force: true });
  };
  return { sb, end };
}

async function once(d: RuntimeDriver, tty: boolean): Promise<number> {
  const t0 = performance.now();
  const { sb, end } = await start(d, ["/bin/sh", "-c", "echo hi"], tty ? { rows: 24, cols: 80 } : undefined);
  sb.stdin?.end();
  sb.stdout.resume();
  sb.stderr.resume();
  const st = await sb.wait();
  if (st.exitCode !== 0) throw new Error(`run failed: ${JSON.stringify(st)}`);
  await end(sb);
  return performance.now() - t0;
}

async function roundTrips(d: RuntimeDriver): Promise<number[]> {
  const { sb, end } = await start(d, ["/bin/cat"], { rows: 24, cols: 80 });
  let seen = "";
  let wake: (() => void) | undefined;
  sb.stdout.on("data", (c: Buffer) => {
    seen += c.toString("latin1");
    wake?.();
  });
  sb.stderr.resume();
  const waitFor = (s: string) =>
    new Promise<void>((resolve) => {
      const check = () => (seen.includes(s) ? resolve() : undefined);
      wake = check;
      check();
    });
  const times: number[] = [];
  for (let i = 0; i < N + 3; i++) {
    const ch = String.fromCharCode(97 + (i % 26));
    seen = "";
    const t0 = performance.now();
    sb.stdin?.write(dataFrames(Buffer.from(ch)));
    await waitFor(ch);
    if (i >= 3) times.push(performance.now() - t0);
  }
  await sb.kill("SIGKILL");
  await sb.wait();
  await end(sb);
  return times;
}

console.log(`start: load ${load()}`);
const runs: string[] = [];
const keys: string[] = [];
for (const name of (values.drivers ?? "").split(",").filter(Boolean)) {
  const d = make(name, path.join(root, `${name}-state`));
  for (let i = 0; i < 3; i++) {
    await once(d, false);
    await once(d, true);
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < N; i++) {
    const order = Math.random() < 0.5 ? [false, true] : [true, false];
    for (const tty of order) (tty ? tb : ta).push(await once(d, tty));
  }
  runs.push(
    `| ${name} | ${f(q(ta, 0.5))} | ${f(q(ta, 0.95))} | ${f(q(tb, 0.5))} | ${f(q(tb, 0.95))} | ${f(q(tb, 0.5) - q(ta, 0.5))} |`,
  );
  const rt = await roundTrips(d);
  keys.push(`| ${name} | ${f(q(rt, 0.5))} | ${f(q(rt, 0.95))} |`);
}
console.log(`echo hi, mount → unmount, N=${N} each, interleaved (ms)`);
console.log("| driver | A: no tty p50 | p95 | B: tty p50 | p95 | B − A (p50) |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of runs) console.log(r);
console.log(`\nkeystroke → echo through the sandbox's pty (cat), N=${N} (ms)`);
console.log("| driver | p50 | p95 |");
console.log("| --- | --- | --- |");
for (const r of keys) console.log(r);
console.log(`end: load ${load()}`);
await rm(root, { recursive: true, force: true });
