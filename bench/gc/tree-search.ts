/**
 * Storage under an agent's tree search, with retention and background GC against without:
 * the data dir over time (the curve) and run latency while GC sweeps, against the raw shell
 * pipeline (bench/run-latency/raw-pipeline.sh) measured before each phase.
 *
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/gc/tree-search.ts
 *   … tree-search.ts --runs 10000 --clients 6 --images-ttl 60 --files-ttl 60 --gc-interval 5
 *
 * Each phase is one in-process server (fresh data dir, busybox from a loopback registry) running
 * the same seeded workload (workload.ts). Phase `off`: CONTREE_GC_INTERVAL_SECONDS=0 and the
 * default TTLs (days: nothing expires during the bench). Phase `on`: the TTL limits and GC
 * settings from the flags, passed as the server's environment (CONTREE_IMAGES_TTL_SECONDS, …).
 * Whether this build knows them is checked at start (whoami limits, the env reference table).
 */
import { execFile } from "node:child_process";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { fixtures } from "../../packages/server/test/harness/fixtures.js";
import { type RegistryHandle, startRegistry } from "../../packages/server/test/harness/registry.js";
import { chart, mib, SAMPLE_HEAD, type Sample, sample, sampleLine } from "./curve.js";
import { type BenchServer, type Driver, importBusybox, serverHasGc, startBenchServer } from "./server.js";
import type { RunResult } from "./timed-run.js";
import { treeSearch, type WorkloadOptions, type WorkloadResult } from "./workload.js";

const execFileP = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));

const { values: opt } = parseArgs({
  options: {
    driver: { type: "string", default: "crun" },
    runs: { type: "string", default: "10000" },
    clients: { type: "string", default: "6" },
    width: { type: "string", default: "32" },
    seed: { type: "string", default: "12" },
    phases: { type: "string", default: "off,on" },
    "images-ttl": { type: "string", default: "60" },
    "files-ttl": { type: "string", default: "60" },
    "gc-interval": { type: "string", default: "5" },
    // The TTLs are compressed from days to a minute: the grace (600 s in a server) is too, or
    // no layer row would be old enough to go within the bench.
    "gc-grace": { type: "string", default: "30" },
    "sample-seconds": { type: "string", default: "10" },
    settle: { type: "string" },
    "raw-n": { type: "string", default: "30" },
    "deep-share": { type: "string", default: "0.05" },
    "upload-share": { type: "string", default: "0.05" },
    "tag-every": { type: "string", default: "100" },
    "keep-tags": { type: "string", default: "4" },
  },
});

const num = (name: keyof typeof opt): number => {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number >= 0, got ${opt[name]}`);
  return v;
};
const DRIVER = opt.driver as Driver;
if (!["crun", "runc", "runsc"].includes(DRIVER)) throw new Error(`unknown driver ${opt.driver}`);
const PHASES = (opt.phases ?? "").split(",").filter((p) => p !== "");
for (const p of PHASES) if (p !== "off" && p !== "on") throw new Error(`unknown phase ${p} (off, on)`);
const SAMPLE_MS = num("sample-seconds") * 1000;
if (SAMPLE_MS <= 0) throw new Error("--sample-seconds must be > 0");
const RAW_N = num("raw-n");
const workload: WorkloadOptions = {
  runs: num("runs"),
  clients: num("clients"),
  width: num("width"),
  seed: num("seed"),
  shallowMax: 4,
  deepShare: num("deep-share"),
  deepMin: 30,
  deepMax: 60,
  uploadShare: num("upload-share"),
  tagEvery: Math.max(1, num("tag-every")),
  keepTags: num("keep-tags"),
};
if (workload.width <= workload.clients)
  throw new Error("--width must exceed --clients (idle branches to pick)");
/** Runs left out of the latency figures: the first ones pay for cold caches. */
const WARMUP = workload.clients * 3;

/** The server environment of a phase: only `on` gets the retention and GC settings. */
function phaseEnv(phase: string): Record<string, string> {
  const env: Record<string, string> = {
    CONTREE_INSTANCE_MAX_CONCURRENCY: "1000",
    CONTREE_INSTANCE_MAX_TIMEOUT: "3600",
    CONTREE_GC_INTERVAL_SECONDS: "0",
  };
  if (phase === "on") {
    env["CONTREE_IMAGES_TTL_SECONDS"] = String(num("images-ttl"));
    env["CONTREE_FILES_TTL_SECONDS"] = String(num("files-ttl"));
    env["CONTREE_GC_INTERVAL_SECONDS"] = String(num("gc-interval"));
    env["CONTREE_GC_GRACE_SECONDS"] = String(num("gc-grace"));
  }
  return env;
}

const quantile = (xs: number[], q: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "–");
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rawPipeline(): Promise<number> {
  if (RAW_N === 0) return Number.NaN;
  const { stdout } = await execFileP(
    "bash",
    [join(HERE, "..", "run-latency", "raw-pipeline.sh"), "-n", String(RAW_N), DRIVER],
    { maxBuffer: 1 << 20 },
  );
  const m = new RegExp(`^${DRIVER}\\s+([\\d.]+) \\(`, "m").exec(stdout);
  if (!m?.[1]) throw new Error(`raw-pipeline.sh printed no figure for ${DRIVER}:\n${stdout}`);
  return Number(m[1]);
}

/** What this build does with the phase's settings, from what the server itself reports. */
async function detect(t: BenchServer, phase: string, env: Record<string, string>): Promise<boolean> {
  const who = (await (await t.api("/v1/whoami")).json()) as { limits?: Record<string, number> };
  const limits = who.limits ?? {};
  const ttl = "images_ttl_seconds" in limits;
  const gc = serverHasGc();
  const shown = `images_ttl_seconds=${limits["images_ttl_seconds"] ?? "–"}, files_ttl_seconds=${limits["files_ttl_seconds"] ?? "–"}`;
  console.log(
    ttl
      ? `  retention: supported (whoami limits: ${shown})`
      : "  retention: NOT in this build (whoami limits have no images_ttl_seconds): the TTL flags do nothing",
  );
  console.log(
    gc
      ? `  background GC: supported, CONTREE_GC_INTERVAL_SECONDS=${env["CONTREE_GC_INTERVAL_SECONDS"]}`
      : "  background GC: NOT in this build (no CONTREE_GC_INTERVAL_SECONDS): the GC flags do nothing",
  );
  if (phase === "on" && ttl) {
    for (const k of ["images_ttl_seconds", "files_ttl_seconds"] as const)
      if (String(limits[k]) !== env[`CONTREE_${k.toUpperCase()}`])
        console.log(
          `  warning: whoami shows ${k}=${limits[k]}, the bench asked for ${env[`CONTREE_${k.toUpperCase()}`]}`,
        );
  }
  return ttl && gc;
}

interface PhaseFigures {
  /** `off` or `on`. */
  name: string;
  /** The name, numbered when a kind runs more than once (`on#2`). */
  label: string;
  effective: boolean;
  raw: number;
  work: WorkloadResult;
  seconds: number;
  samples: Sample[];
  /** Measured runs (after the warm-up) and those of them overlapping a GC pass. */
  ms: number[];
  duringSweeps: number[];
  sweeps: number;
  bytesFreed: number;
  warnings: number;
  errors: number;
  logSamples: string[];
  gcMetrics: string[];
}

async function runPhase(phase: string, label: string, reg: RegistryHandle): Promise<PhaseFigures> {
  console.log(`\n[${label}] raw pipeline, ${DRIVER}, n=${RAW_N} (load ${load()})`);
  const raw = await rawPipeline();
  console.log(`[${label}] raw median ${f1(raw)} ms`);
  const env = phaseEnv(phase);
  const t = await startBenchServer(DRIVER, env);
  try {
    const effective = await detect(t, phase, env);
    const root = await importBusybox(t, reg);
    console.log(
      `[${label}] tree search: ${workload.runs} runs, ${workload.clients} clients, ${workload.width} open branches, seed ${workload.seed} (load ${load()})`,
    );
    console.log(`${SAMPLE_HEAD}  p50 ms (window)`);
    const samples: Sample[] = [];
    const window: number[] = [];
    let done = 0;
    const t0 = performance.now();
    const take = async () => {
      const s = await sample(t, (performance.now() - t0) / 1000, done);
      samples.push(s);
      console.log(`${sampleLine(s)}  ${f1(quantile(window, 0.5)).padStart(15)}`);
      window.length = 0;
    };
    await take();
    let stop = false;
    const sampler = (async () => {
      for (let next = SAMPLE_MS; !stop; next += SAMPLE_MS) {
        while (!stop && performance.now() - t0 < next) await sleep(Math.min(250, SAMPLE_MS));
        if (!stop) await take();
      }
    })();
    let work: WorkloadResult;
    try {
      work = await treeSearch(t, root, workload, (r: RunResult) => {
        done++;
        window.push(r.ms);
      });
    } finally {
      stop = true;
      await sampler;
    }
    const seconds = (performance.now() - t0) / 1000;
    await take();
    const settle =
      opt.settle !== undefined
        ? num("settle")
        : phase === "on" && effective
          ? Math.max(num("images-ttl"), num("files-ttl")) + 2 * num("gc-interval") + 5
          : 0;
    if (settle > 0) {
      console.log(`[${label}] no runs for ${settle} s: retention and GC catch up`);
      const until = performance.now() + settle * 1000;
      while (performance.now() < until) {
        await sleep(Math.min(SAMPLE_MS, until - performance.now()));
        await take();
      }
    }

    const measured = work.runs.slice(WARMUP);
    const sweeps = [...t.log.sweeps];
    const overlaps = (r: RunResult) => sweeps.some((s) => r.start < s.end && r.end > s.start);
    const metrics = await (await t.api("/metrics")).text().catch(() => "");
    return {
      name: phase,
      label,
      effective,
      raw,
      work,
      seconds,
      samples,
      ms: measured.map((r) => r.ms),
      duringSweeps: measured.filter(overlaps).map((r) => r.ms),
      sweeps: sweeps.length,
      bytesFreed: sweeps.reduce((a, s) => a + s.bytesFreed, 0),
      warnings: t.log.warnings,
      errors: t.log.errors,
      logSamples: t.log.samples,
      gcMetrics: metrics.split("\n").filter((l) => /^contree_\w*gc/i.test(l)),
    };
  } finally {
    await t.close();
  }
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i] ?? 0)).join(" | ")} |`;
  return [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n");
}

function report(figs: PhaseFigures[]): void {
  console.log(
    `\nTree search, ${DRIVER}: POST /v1/instances → completion event (ms), first ${WARMUP} runs left out`,
  );
  console.log(
    table(
      [
        "phase",
        "settings in effect",
        "runs ok",
        "gone",
        "failed",
        "p50",
        "p90",
        "p99",
        "raw median",
        "p50 / raw",
        "runs/s",
        "peak MiB",
        "end MiB",
        "gc passes",
        "MiB freed",
        "runs during sweeps",
        "p50 / p90 during sweeps",
      ],
      figs.map((f) => [
        f.label,
        f.name === "on" ? (f.effective ? "yes" : "no (same as off)") : "gc off",
        String(f.work.runs.length),
        String(f.work.gone),
        String(f.work.failed),
        f1(quantile(f.ms, 0.5)),
        f1(quantile(f.ms, 0.9)),
        f1(quantile(f.ms, 0.99)),
        f1(f.raw),
        ratio(quantile(f.ms, 0.5), f.raw),
        (f.work.runs.length / f.seconds).toFixed(1),
        mib(Math.max(...f.samples.map((s) => s.total))),
        mib(f.samples.at(-1)?.total ?? 0),
        String(f.sweeps),
        mib(f.bytesFreed),
        String(f.duringSweeps.length),
        `${f1(quantile(f.duringSweeps, 0.5))} / ${f1(quantile(f.duringSweeps, 0.9))}`,
      ]),
    ),
  );
  for (const f of figs) {
    const w = f.work;
    console.log(
      `[${f.label}] ${w.branches} branches (${w.deepBranches} deep), max depth ${w.maxDepth}, ${w.tagMoves} moves of search/best:latest, ${w.keptTags} kept tags, ${w.uploads} uploads; server log: ${f.warnings} warnings, ${f.errors} errors`,
    );
    if (w.firstFailure) console.log(`  first failure: ${w.firstFailure}`);
    for (const s of f.logSamples) console.log(`  log: ${s}`);
    for (const m of f.gcMetrics) console.log(`  metric: ${m}`);
  }
  // Phases of one kind pooled: runs together, p50/raw averaged over the phases.
  const pool = (name: string) => {
    const of = figs.filter((f) => f.name === name);
    const perRaw = of.map((f) => quantile(f.ms, 0.5) / f.raw);
    return {
      n: of.length,
      effective: of.every((f) => f.effective),
      ms: of.flatMap((f) => f.ms),
      duringSweeps: of.flatMap((f) => f.duringSweeps),
      perRaw: perRaw.reduce((a, b) => a + b, 0) / perRaw.length,
    };
  };
  const off = pool("off");
  const on = pool("on");
  if (off.n > 0 && on.n > 0) {
    const [p50off, p90off, p50on, p90on] = [
      quantile(off.ms, 0.5),
      quantile(off.ms, 0.9),
      quantile(on.ms, 0.5),
      quantile(on.ms, 0.9),
    ];
    const phases = off.n > 1 || on.n > 1 ? ` (runs of ${off.n} off and ${on.n} on phases pooled)` : "";
    console.log(`\nratio p50 gc on / gc off: ${ratio(p50on, p50off)} (p90 ${ratio(p90on, p90off)})${phases}`);
    console.log(
      `ratio of p50 / raw, gc on / gc off (load drift between phases cancelled): ${ratio(on.perRaw, off.perRaw)}`,
    );
    if (on.duringSweeps.length > 0)
      console.log(
        `ratio p50 during sweeps / gc off: ${ratio(quantile(on.duringSweeps, 0.5), p50off)} (p90 ${ratio(quantile(on.duringSweeps, 0.9), p90off)}) over ${on.duringSweeps.length} runs; aim ≤ 1.1×`,
      );
    else
      console.log(
        on.effective
          ? "no GC pass found in the server log (a pass is a log line with the GC report's startedAt/durationMs/bytesFreed)"
          : "this build has no retention/GC: the on phase ran with the settings ignored, so its ratio is the bench's noise",
      );
  }
  console.log(
    `\nData dir (layers + content + metadata.db) over time, one scale:\n${chart(figs.map((f) => ({ name: f.label, samples: f.samples })))}`,
  );
}

async function main(): Promise<void> {
  const { stdout: up } = await execFileP("uptime");
  console.log(`start: ${up.trim()}`);
  const fx = await fixtures();
  const reg = await startRegistry({ seedFrom: fx.registryData });
  try {
    const figs: PhaseFigures[] = [];
    const seen = new Map<string, number>();
    for (const p of PHASES) {
      const i = (seen.get(p) ?? 0) + 1;
      seen.set(p, i);
      const repeated = PHASES.filter((q) => q === p).length > 1;
      figs.push(await runPhase(p, repeated ? `${p}#${i}` : p, reg));
    }
    report(figs);
  } finally {
    await reg.stop();
    const { stdout: end } = await execFileP("uptime");
    console.log(`end: ${end.trim()}`);
  }
}

await main();
