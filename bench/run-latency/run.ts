/**
 * Run latency of the server per sandbox driver, against the raw shell pipeline
 * (raw-pipeline.sh: mount + runtime + umount + mv) measured in the same invocation.
 *
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/run-latency/run.ts
 *   … run.ts --drivers crun,runc,runsc --n 30 --depth 2000 --clients 8 --seconds 10 --fanout 100
 *
 * Per driver, one in-process server (real HTTP on 127.0.0.1, its own data dir) with busybox
 * imported from a loopback registry:
 *  - latency: POST /v1/instances → `completion` on the followed event stream, for
 *    `echo hi > /out` (shell), non-disposable and disposable, N runs each after 3 warm-ups;
 *  - raw: raw-pipeline.sh for the same runtime, and server p50 / raw median;
 *  - throughput: `--clients` closed-loop clients for `--seconds` (runs/s);
 *  - fan-out: `--fanout` runs from one image posted at once, each writing its own file.
 * Then, with the fastest driver, a lineage chain `--depth` runs long, and the same run measured
 * from the depth-1 and the depth-N image (interleaved, so load drift hits both alike).
 *
 * Driver choice: config `runtime: "oci"` gives crun (the first OCI candidate that passes its
 * self-test), `"gvisor"` gives runsc. runc is never chosen while crun works, so for runc the
 * server starts with a PATH on which `crun --version` fails (a shim), and selection falls to runc.
 */
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { detectCgroupMode } from "../../packages/server/src/runtime/cgroups.js";
import { MAX_MOUNT_CHAIN } from "../../packages/server/src/snapshots/compactor.js";
import { FIXTURE_IMAGES, fixtures } from "../../packages/server/test/harness/fixtures.js";
import {
  startTestServer,
  type TestServer,
  waitOperation,
} from "../../packages/server/test/harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../../packages/server/test/harness/registry.js";

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const WARMUP = 3;
const PROGRESS_EVERY = Number(process.env["BENCH_PROGRESS_EVERY"] ?? 250);

const { values: opt } = parseArgs({
  options: {
    drivers: { type: "string", default: "crun,runc,runsc" },
    n: { type: "string", default: "30" },
    depth: { type: "string", default: "2000" },
    clients: { type: "string", default: "8" },
    seconds: { type: "string", default: "10" },
    fanout: { type: "string", default: "100" },
  },
});
const DRIVERS = (opt.drivers ?? "").split(",").filter((d) => d !== "");
const N = Number(opt.n);
const DEPTH = Number(opt.depth);
const CLIENTS = Number(opt.clients);
const SECONDS = Number(opt.seconds);
const FANOUT = Number(opt.fanout);

type Driver = "crun" | "runc" | "runsc";

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

interface RunResult {
  ms: number;
  status: string;
  /** Exit code of the command (from the `exit` event); NaN when there was none. */
  exitCode: number;
  /** The first stderr chunk, to say why a run failed. */
  stderr: string;
  /** The operation's error, if any. */
  error: string | null;
  image: string | null;
  id: string;
  /** ms spent in each stage, from the client's POST and the events' timestamps (same clock). */
  stages: Record<Stage, number>;
}

/** Where a run's time goes, cut at the events the pipeline emits. */
const STAGES = ["queue", "mount", "start", "process", "snapshot", "finish", "deliver"] as const;
type Stage = (typeof STAGES)[number];

/** SUCCESS with exit 0: an operation can succeed while the runtime failed to start the command. */
const ok = (r: RunResult | undefined) => r?.status === "SUCCESS" && r.exitCode === 0;
const why = (r: RunResult) =>
  `${r.status}, exit ${r.exitCode}${r.error ? `, error: ${r.error}` : ""}: ${r.stderr.trim().slice(0, 200)}`;

/** POST a run and follow its events until `completion`; the time is the client's wall time. */
async function timedRun(t: TestServer, body: Record<string, unknown>): Promise<RunResult> {
  const t0 = performance.now();
  const r = await t.api("/v1/instances", { method: "POST", json: body });
  if (r.status !== 202) throw new Error(`spawn answered ${r.status}: ${await r.text()}`);
  const { uuid } = (await r.json()) as { uuid: string };
  const ev = await t.api(`/v1/operations/${uuid}/events?follow=1`, {
    headers: { "accept-encoding": "identity" },
  });
  const reader = ev.body?.getReader();
  if (!reader) throw new Error("no event stream");
  const dec = new TextDecoder();
  let text = "";
  let from = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (value) text += dec.decode(value, { stream: true });
    const i = text.indexOf("event: completion", from);
    if (i >= 0 && text.indexOf("\n\n", i) >= 0) break;
    // Only the tail can hold a frame that is still arriving.
    from = Math.max(0, text.length - 64);
    if (done) throw new Error(`event stream ended without completion: ${text.slice(-300)}`);
  }
  const ms = performance.now() - t0;
  await reader.cancel();
  const data = (type: string) => {
    const line = new RegExp(`event: ${type}\n(?:id: .*\n)?data: (.*)\n`).exec(text)?.[1];
    return (JSON.parse(line ?? "{}") as { data?: Record<string, unknown> }).data ?? {};
  };
  const at = (type: string) => {
    const line = new RegExp(`event: ${type}\n(?:id: .*\n)?data: (.*)\n`).exec(text)?.[1];
    const ts = (JSON.parse(line ?? "{}") as { ts?: string }).ts;
    return ts === undefined ? Number.NaN : Date.parse(ts);
  };
  const posted = performance.timeOrigin + t0;
  const handlerStart = Date.parse(String(data("init")["started_at"] ?? ""));
  const marks = [
    posted,
    handlerStart,
    at("init"),
    at("spawn"),
    at("exit"),
    at("shutdown"),
    at("completion"),
    performance.timeOrigin + t0 + ms,
  ];
  const stages = Object.fromEntries(
    STAGES.map((s, i) => [s, (marks[i + 1] as number) - (marks[i] as number)]),
  ) as Record<Stage, number>;
  const completion = data("completion");
  const exit = data("exit");
  const stderr = data("stderr");
  return {
    ms,
    status: String(completion["status"] ?? "?"),
    exitCode: typeof exit["code"] === "number" ? exit["code"] : Number.NaN,
    stderr: typeof stderr["value"] === "string" && stderr["encoding"] !== "base64" ? stderr["value"] : "",
    error: typeof completion["error"] === "string" ? completion["error"] : null,
    image: (completion["result_image_uuid"] as string | null | undefined) ?? null,
    id: uuid,
    stages,
  };
}

async function importBusybox(t: TestServer, reg: RegistryHandle): Promise<string> {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
  });
  const { uuid } = (await r.json()) as { uuid: string };
  const op = await waitOperation(t, uuid, 180_000);
  if (op["status"] !== "SUCCESS") throw new Error(`import failed: ${String(op["error"])}`);
  return String(op["result_image_uuid"]);
}

/** In-process server whose selection lands on `driver` (see the header for runc). */
async function startFor(driver: Driver): Promise<{ t: TestServer; restore: () => Promise<void> }> {
  const env: Record<string, string> = {
    CONTREE_INSTANCE_MAX_CONCURRENCY: "1000",
    CONTREE_INSTANCE_MAX_TIMEOUT: "3600",
    CONTREE_RUNSC_STATX_FIX: process.env["CONTREE_RUNSC_STATX_FIX"] ?? "auto",
  };
  // The scratch backend to measure (CONTREE_SCRATCH=plain is the pre-enforcement behaviour).
  for (const k of ["CONTREE_SCRATCH", "CONTREE_SCRATCH_TMPFS_MAX_BYTES"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  if (driver !== "runc") {
    const t = await startTestServer({ runtime: driver === "runsc" ? "gvisor" : "oci" }, env);
    return { t, restore: async () => undefined };
  }
  const shim = await mkdtemp(join(tmpdir(), "bench-no-crun-"));
  await writeFile(join(shim, "crun"), "#!/bin/sh\nexit 127\n");
  await chmod(join(shim, "crun"), 0o755);
  const path = process.env["PATH"];
  process.env["PATH"] = `${shim}:${path ?? ""}`;
  const restore = async () => {
    process.env["PATH"] = path;
    await rm(shim, { recursive: true, force: true });
  };
  try {
    return { t: await startTestServer({ runtime: "oci" }, env), restore };
  } catch (e) {
    await restore();
    throw e;
  }
}

async function rawPipeline(driver: Driver, path: string | undefined): Promise<number> {
  const { stdout } = await run("bash", [join(HERE, "raw-pipeline.sh"), "-n", String(N), driver], {
    env: { ...process.env, PATH: path },
    maxBuffer: 1 << 20,
  });
  const m = new RegExp(`^${driver}\\s+([\\d.]+) \\(`, "m").exec(stdout);
  if (!m?.[1]) throw new Error(`raw-pipeline.sh printed no figure for ${driver}:\n${stdout}`);
  return Number(m[1]);
}

interface DriverFigures {
  driver: string;
  persistent: number[];
  disposable: number[];
  /** Stage times of the non-disposable runs. */
  stages: Array<Record<Stage, number>>;
  raw: number;
  runsPerSec: number;
  tputRuns: number;
  tputFailures: number;
  fanoutMs: number;
  fanoutFailures: number;
  load: string;
}

async function benchDriver(
  driver: Driver,
  reg: RegistryHandle,
  originalPath: string | undefined,
): Promise<DriverFigures> {
  const { t, restore } = await startFor(driver);
  try {
    if (t.server.runtime.name !== driver)
      throw new Error(`asked for ${driver}, the server selected ${t.server.runtime.name}`);
    const base = await importBusybox(t, reg);
    const body = { command: "echo hi > /out", shell: true, image: base };
    console.log(`[${driver}] latency (load ${load()})`);
    const series: Record<"persistent" | "disposable", number[]> = { persistent: [], disposable: [] };
    const stages: Array<Record<Stage, number>> = [];
    for (const disposable of [false, true]) {
      const into = series[disposable ? "disposable" : "persistent"];
      for (let i = 0; i < WARMUP + N; i++) {
        const r = await timedRun(t, { ...body, disposable });
        if (!ok(r)) throw new Error(`[${driver}] run ${i} failed (${why(r)})`);
        if (i >= WARMUP) into.push(r.ms);
        if (i >= WARMUP && !disposable) stages.push(r.stages);
      }
    }

    console.log(`[${driver}] raw pipeline (load ${load()})`);
    const raw = await rawPipeline(driver, originalPath);

    console.log(`[${driver}] throughput, ${CLIENTS} clients × ${SECONDS} s (load ${load()})`);
    let done = 0;
    let failures = 0;
    const t0 = performance.now();
    const deadline = t0 + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() < deadline) {
          const r = await timedRun(t, body).catch(() => undefined);
          if (ok(r)) done++;
          else failures++;
        }
      }),
    );
    const runsPerSec = done / ((performance.now() - t0) / 1000);

    console.log(`[${driver}] fan-out of ${FANOUT} (load ${load()})`);
    const f0 = performance.now();
    const fan = await Promise.all(
      Array.from({ length: FANOUT }, (_, i) =>
        timedRun(t, { command: `echo ${i} > /branch-${i}`, shell: true, image: base }).catch(() => undefined),
      ),
    );
    const fanoutMs = performance.now() - f0;
    let fanoutFailures = 0;
    const images = new Set<string>();
    for (const r of fan) {
      if (!ok(r) || r?.image == null) fanoutFailures++;
      else images.add(r.image);
    }
    // Every branch is its own image.
    fanoutFailures += FANOUT - fanoutFailures - images.size;
    const firstBad = fan.find((r) => !ok(r));
    if (firstBad) console.log(`[${driver}] fan-out failure, e.g. ${why(firstBad)}`);

    return {
      driver,
      persistent: series.persistent,
      disposable: series.disposable,
      stages,
      raw,
      runsPerSec,
      tputRuns: done,
      tputFailures: failures,
      fanoutMs,
      fanoutFailures,
      load: load(),
    };
  } finally {
    await t.close();
    await restore();
  }
}

interface DepthFigures {
  driver: string;
  reached: number;
  longestChain: number;
  broke: string | null;
  buildMs: number;
  shallow: number[];
  deep: number[];
  deepChain: number;
  flatLayers: number;
  dataBytes: string;
  load: string;
}

async function benchDepth(driver: Driver, reg: RegistryHandle): Promise<DepthFigures> {
  const { t, restore } = await startFor(driver);
  try {
    const base = await importBusybox(t, reg);
    console.log(`[depth] building a chain of ${DEPTH} runs with ${driver} (load ${load()})`);
    const b0 = performance.now();
    let img = base;
    let depth1 = "";
    let reached = 0;
    let longestChain = 0;
    let broke: string | null = null;
    let prev = base;
    for (let i = 1; i <= DEPTH; i++) {
      const r = await timedRun(t, { command: `echo ${i} > /depth`, shell: true, image: img });
      if (!ok(r) || r.image === null) {
        // Reported, not thrown: how deep the server gets is itself a result.
        broke = `chain run ${i} failed (${why(r)})`;
        console.log(`  ${broke}`);
        break;
      }
      const rec = await t.server.store.images.getAny(r.image);
      if (rec?.depth !== i)
        throw new Error(`chain run ${i} from ${img} gave ${r.image} at depth ${rec?.depth} (op ${r.id})`);
      prev = img;
      img = r.image;
      reached = i;
      longestChain = Math.max(longestChain, rec.mountChain.length);
      if (i === 1) depth1 = img;
      if (i % PROGRESS_EVERY === 0)
        console.log(
          `  depth ${i}: ${((performance.now() - b0) / 1000).toFixed(0)} s, mount chain ${rec.mountChain.length} (load ${load()})`,
        );
    }
    const buildMs = performance.now() - b0;
    // After a break the last image is the one whose chain no run can mount; measure its parent.
    const deep = broke === null ? img : prev;
    if (broke !== null) reached--;
    // Let background flattening settle: the deep image's chain is short and no new flat layer appears.
    const flatCount = async () =>
      Number(
        (
          (await t.server.store.db
            .selectFrom("layers")
            .select((eb) => eb.fn.countAll<number>().as("n"))
            .where("kind", "=", "flat")
            .executeTakeFirst()) as { n: number }
        ).n,
      );
    let last = -1;
    const settleBy = Date.now() + 300_000;
    for (let stable = 0; stable < 3 && Date.now() < settleBy; ) {
      await new Promise((r) => setTimeout(r, 1000));
      const rec = await t.server.store.images.getAny(deep);
      const n = await flatCount();
      stable = (rec?.mountChain.length ?? Infinity) <= MAX_MOUNT_CHAIN && n === last ? stable + 1 : 0;
      last = n;
    }
    const deepRec = await t.server.store.images.getAny(deep);
    if (deepRec?.depth !== reached) throw new Error(`deep image has depth ${deepRec?.depth}`);

    console.log(`[depth] measuring depth 1 vs ${DEPTH} (load ${load()})`);
    const shallow: number[] = [];
    const deepMs: number[] = [];
    for (let i = 0; i < WARMUP + N; i++) {
      for (const [image, into] of [
        [depth1, shallow],
        [deep, deepMs],
      ] as const) {
        const r = await timedRun(t, { command: "echo hi > /out", shell: true, image });
        if (!ok(r)) throw new Error(`depth run failed (${why(r)})`);
        if (i >= WARMUP) into.push(r.ms);
      }
    }
    const { stdout } = await run("du", ["-sh", t.dataDir]);
    return {
      driver,
      reached,
      longestChain,
      broke,
      buildMs,
      shallow,
      deep: deepMs,
      deepChain: deepRec.mountChain.length,
      flatLayers: await flatCount(),
      dataBytes: stdout.split("\t")[0] ?? "?",
      load: load(),
    };
  } finally {
    await t.close();
    await restore();
  }
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i] ?? 0)).join(" | ")} |`;
  return [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const originalPath = process.env["PATH"];
  const { stdout: up } = await run("uptime");
  console.log(`start: ${up.trim()}`);
  console.log(
    `cgroup mode in this mount namespace: ${detectCgroupMode()}${detectCgroupMode() === "hybrid" ? " (crun calls go through the per-call unshare wrapper)" : ""}`,
  );
  const fx = await fixtures();
  const reg = await startRegistry({ seedFrom: fx.registryData });
  try {
    const figures: DriverFigures[] = [];
    for (const d of DRIVERS) {
      if (d !== "crun" && d !== "runc" && d !== "runsc") throw new Error(`unknown driver ${d}`);
      figures.push(await benchDriver(d, reg, originalPath));
    }
    console.log(
      `\nPOST /v1/instances → completion event, \`echo hi > /out\`, N=${N} after ${WARMUP} warm-ups (ms)`,
    );
    console.log(
      table(
        [
          "driver",
          "p50",
          "p95",
          "disposable p50",
          "disposable p95",
          "raw median",
          "p50 / raw",
          `runs/s (${CLIENTS} clients)`,
          `fan-out ${FANOUT} wall`,
          "fan-out failures",
          "load after",
        ],
        figures.map((f) => [
          f.driver,
          f1(quantile(f.persistent, 0.5)),
          f1(quantile(f.persistent, 0.95)),
          f1(quantile(f.disposable, 0.5)),
          f1(quantile(f.disposable, 0.95)),
          f1(f.raw),
          `${(quantile(f.persistent, 0.5) / f.raw).toFixed(2)}×`,
          `${f.runsPerSec.toFixed(1)} (${f.tputRuns} ok, ${f.tputFailures} failed)`,
          `${(f.fanoutMs / 1000).toFixed(2)} s`,
          String(f.fanoutFailures),
          f.load,
        ]),
      ),
    );

    console.log(
      "\nWhere the time goes (non-disposable runs, p50 per stage, ms): queue = POST → handler start,",
    );
    console.log("mount = overlay + files → init event, start = cgroup/bundle/runtime launch → spawn event,");
    console.log(
      "process = spawn → exit event, snapshot = unmount + diff + commit → shutdown, finish = → completion stored,",
    );
    console.log("deliver = → completion read by the client");
    console.log(
      table(
        ["driver", ...STAGES, "sum of p50s", "p50 total"],
        figures.map((f) => {
          const p = STAGES.map((st) =>
            quantile(
              f.stages.map((x) => x[st]),
              0.5,
            ),
          );
          return [f.driver, ...p.map(f1), f1(p.reduce((a, b) => a + b, 0)), f1(quantile(f.persistent, 0.5))];
        }),
      ),
    );

    if (DEPTH > 0 && figures.length > 0) {
      const fastest = [...figures].sort(
        (a, b) => quantile(a.persistent, 0.5) - quantile(b.persistent, 0.5),
      )[0] as DriverFigures;
      const d = await benchDepth(fastest.driver as Driver, reg);
      const p1 = quantile(d.shallow, 0.5);
      const pN = quantile(d.deep, 0.5);
      console.log(
        `\nLineage depth (${d.driver}): chain of ${d.reached} of ${DEPTH} built in ${(d.buildMs / 1000).toFixed(0)} s, longest mount chain seen ${d.longestChain}; N=${N} each, interleaved`,
      );
      if (d.broke) console.log(`the chain broke: ${d.broke}`);
      console.log(
        table(
          ["depth", "p50", "p95", "mount chain", "flat layers", "data dir", "load after"],
          [
            ["1", f1(p1), f1(quantile(d.shallow, 0.95)), "", "", "", ""],
            [
              String(d.reached),
              f1(pN),
              f1(quantile(d.deep, 0.95)),
              String(d.deepChain),
              String(d.flatLayers),
              d.dataBytes,
              d.load,
            ],
          ],
        ),
      );
      console.log(`ratio p50 depth ${d.reached} / depth 1: ${(pN / p1).toFixed(2)}× (aim ≤ 1.25×)`);
    }
  } finally {
    await reg.stop();
    const { stdout: end } = await run("uptime");
    console.log(`end: ${end.trim()}`);
  }
}

await main();
