/**
 * Does one tenant's reading of a maximal run stall everybody else? whoami latency of another
 * project, idle and while N clients read the operation document or the event log of a run with
 * maximal output (truncate_output_at at its maximum on stdout and stderr), plus server RSS.
 *
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/heavy-reads/run.ts
 *   BENCH_ROOT=/tmp/old-checkout ...   runs the server of another checkout (e.g. main)
 *   BENCH_LOADS=20,40 BENCH_SECONDS=10 BENCH_SERVER_ENV="CONTREE_HEAVY_PER_TOKEN=1000" ...
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Worker } from "node:worker_threads";
import { FIXTURE_IMAGES, fixtures } from "../../packages/server/test/harness/fixtures.js";
import { startRegistry } from "../../packages/server/test/harness/registry.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const ROOT = resolve(process.env["BENCH_ROOT"] ?? join(import.meta.dirname, "../.."));
const LOADS = (process.env["BENCH_LOADS"] ?? "20,40").split(",").map(Number);
const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 10);
const TOKEN = "bench-heavy-reads-token-0123456789";
const SERVER_ENV = Object.fromEntries(
  (process.env["BENCH_SERVER_ENV"] ?? "")
    .split(/\s+/)
    .filter((s) => s.includes("="))
    .map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]),
);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CONTREE_")) e[k] = v;
  return {
    ...e,
    CONTREE_LOG_LEVEL: "warn",
    CONTREE_RUNTIME: "oci",
    CONTREE_BOOTSTRAP_TOKEN: TOKEN,
    ...SERVER_ENV,
  };
}

const entry = join(ROOT, "packages/server/test/harness/daemon-entry.ts");
const cli = (args: string[]) =>
  run(process.execPath, ["--import", "tsx", entry, ...args], { cwd: ROOT, env: env() });

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

async function startServer(
  dataDir: string,
): Promise<{ url: string; proc: ChildProcess; serverLog: () => string }> {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", entry, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"],
    { cwd: ROOT, env: env(), stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  proc.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
    if (url) return { url, proc, serverLog: () => out };
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill("SIGKILL");
  throw new Error(`server did not start:\n${out}`);
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "bench-heavy-reads-"));
  const fx = await fixtures();
  const registry = await startRegistry({ seedFrom: fx.registryData });
  // A second project whose whoami is the probe (another tenant).
  await cli(["project", "create", "bystander", "--data-dir", dataDir]).catch(() => undefined);
  const { url, proc, serverLog } = await startServer(dataDir);
  const pid = proc.pid as number;
  const bystander = (
    await cli(["token", "create", "--project", "bystander", "--data-dir", dataDir])
  ).stdout.trim();
  const api = async (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    headers.set("authorization", `Bearer ${TOKEN}`);
    if (json !== undefined) headers.set("content-type", "application/json");
    return fetch(`${url}${path}`, {
      ...rest,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
  };
  const waitOp = async (id: string) => {
    for (;;) {
      const r = await api(`/v1/operations/${id}`);
      const doc = (await r.json()) as { status: string; error: string | null };
      if (["SUCCESS", "FAILED", "CANCELLED"].includes(doc.status)) return doc;
      await new Promise((res) => setTimeout(res, 500));
    }
  };
  try {
    console.log(`server from ${ROOT} (pid ${pid}), extra env ${JSON.stringify(SERVER_ENV)}`);
    const imp = await api("/v1/images/import", {
      method: "POST",
      json: {
        registry: { url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}` },
        tag: "busybox:latest",
      },
    });
    const impDoc = await waitOp(((await imp.json()) as { uuid: string }).uuid);
    if (impDoc.status !== "SUCCESS") throw new Error(`import: ${impDoc.error}`);
    const max = 16 * MiB;
    const dbBefore = (await run("du", ["-sb", join(dataDir, "metadata.db")])).stdout.split("\t")[0];
    const sp = await api("/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        command: `seq 1 2500000; head -c ${2 * max} /dev/urandom >&2`,
        shell: true,
        disposable: true,
        timeout: 600,
        truncate_output_at: max,
      },
    });
    const opId = ((await sp.json()) as { uuid: string }).uuid;
    const t0 = performance.now();
    const done = await waitOp(opId);
    if (done.status !== "SUCCESS") throw new Error(`run: ${done.error}`);
    const probeDoc = await api(`/v1/operations/${opId}`);
    const docBytes = (await probeDoc.arrayBuffer()).byteLength;
    await run("sqlite3", [join(dataDir, "metadata.db"), "PRAGMA wal_checkpoint(TRUNCATE);"]).catch(
      () => undefined,
    );
    const dbAfter = (await run("du", ["-sb", join(dataDir, "metadata.db")])).stdout.split("\t")[0];
    console.log(
      `max-output run: ${((performance.now() - t0) / 1000).toFixed(1)} s; operation document ${(docBytes / MiB).toFixed(1)} MiB; ` +
        `metadata.db ${(Number(dbBefore) / MiB).toFixed(2)} → ${(Number(dbAfter) / MiB).toFixed(2)} MiB`,
    );

    let whoamiFailures = 0;
    /** Sequential whoami calls of the bystander project for `ms`; latencies in ms (failures counted). */
    const probe = async (ms: number): Promise<number[]> => {
      const lat: number[] = [];
      const until = Date.now() + ms;
      while (Date.now() < until && proc.exitCode === null) {
        const s = performance.now();
        try {
          const r = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${bystander}` } });
          await r.arrayBuffer();
          if (r.status !== 200) throw new Error(`whoami ${r.status}`);
          lat.push(performance.now() - s);
        } catch {
          whoamiFailures++;
        }
        await new Promise((res) => setTimeout(res, 20));
      }
      return lat;
    };
    await probe(1000);
    const idle = await probe(4000);
    const idleP50 = pct(idle, 50);
    const idleP99 = pct(idle, 99);
    const rssIdle = await rssOf(pid);
    const rows: string[] = [];
    const fmt = (x: number) => x.toFixed(1);
    rows.push(
      `| idle | ${idle.length} | ${fmt(idleP50)} | ${fmt(idleP99)} | 1.0× | 1.0× | ${(rssIdle / MiB).toFixed(0)} | – | – | – |`,
    );
    console.log(rows.at(-1));
    for (const kind of ["operation", "events"] as const) {
      const path = kind === "operation" ? `/v1/operations/${opId}` : `/v1/operations/${opId}/events`;
      for (const n of LOADS) {
        if (proc.exitCode !== null) break;
        whoamiFailures = 0;
        let peak = await rssOf(pid);
        const sampler = setInterval(() => {
          rssOf(pid).then(
            (r) => (peak = Math.max(peak, r)),
            () => undefined,
          );
        }, 100);
        const worker = new Worker(new URL("./readers.mjs", import.meta.url), {
          workerData: { url, token: TOKEN, paths: [path], clients: n, seconds: SECONDS },
        });
        const stats = new Promise<{
          ok: number;
          refused: number;
          errors: number;
          bytes: number;
          msOk: number[];
        }>((res, rej) => {
          worker.once("message", res);
          worker.once("error", rej);
        });
        await new Promise((r) => setTimeout(r, 300));
        const lat = await probe(SECONDS * 1000 - 500);
        const s = await stats;
        clearInterval(sampler);
        await worker.terminate();
        const p50 = pct(lat, 50);
        const p99 = pct(lat, 99);
        rows.push(
          `| ${kind} GET ×${n} | ${lat.length} | ${fmt(p50)} | ${fmt(p99)} | ${(p50 / idleP50).toFixed(1)}× | ${(p99 / idleP99).toFixed(1)}× | ${(peak / MiB).toFixed(0)} | ${s.ok} (p50 ${fmt(pct(s.msOk, 50) / 1000)} s) | ${s.refused} | ${s.errors} |${whoamiFailures > 0 ? ` whoami failed ${whoamiFailures}×` : ""}${proc.exitCode !== null || proc.signalCode !== null ? ` server died (${proc.exitCode ?? proc.signalCode})` : ""}`,
        );
        console.log(rows.at(-1));
        // Let the server settle (finish abandoned streams) before the next load.
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    console.log("");
    console.log(
      `whoami of another project (ms), ${SECONDS} s per load, readers in a worker thread, server RSS in MiB`,
    );
    console.log(
      "| load | whoami samples | p50 | p99 | p50 / idle | p99 / idle | peak RSS | heavy reads done (time each) | 429s | errors |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|");
    for (const r of rows) console.log(r);
    if (proc.exitCode !== null) console.log(`server exited: ${serverLog().slice(-2000)}`);
  } finally {
    proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 2000));
    if (proc.exitCode === null) proc.kill("SIGKILL");
    await registry.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
