/**
 * An in-process server for the GC bench: the same graph as the daemon (createServer), real HTTP
 * on 127.0.0.1, its own data dir, the driver chosen as bench/run-latency does it. Unlike the test
 * harness it keeps the server's log: GC pass reports and warnings are read from it.
 */
import { mkdtempSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { ENV_VARS, loadConfig } from "../../packages/server/src/config/load-config.js";
import { createServer, type Server } from "../../packages/server/src/main.js";
import { FIXTURE_IMAGES } from "../../packages/server/test/harness/fixtures.js";
import { TEST_PRIVATE_REGISTRIES, waitOperation } from "../../packages/server/test/harness/in-process.js";
import type { RegistryHandle } from "../../packages/server/test/harness/registry.js";

export type Driver = "crun" | "runc" | "runsc";

/** One GC pass as the server logged it (the GC report's shared field names). */
export interface SweepWindow {
  start: number;
  end: number;
  bytesFreed: number;
}

export interface ServerLog {
  sweeps: SweepWindow[];
  warnings: number;
  errors: number;
  /** The first few warning/error messages, to say what went wrong. */
  samples: string[];
}

export interface BenchServer {
  server: Server;
  dataDir: string;
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  log: ServerLog;
  close(): Promise<void>;
}

/** Whether this build knows the GC settings (the GC helper adds them to the env reference table). */
export const serverHasGc = (): boolean => ENV_VARS["CONTREE_GC_INTERVAL_SECONDS"] !== undefined;

const TOKEN = "bench-admin-token";

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** The GC report in a log line: at the top level or one level down (e.g. `{ report: {...} }`). */
function reportIn(line: Record<string, unknown>): Record<string, unknown> | undefined {
  const has = (o: Record<string, unknown>) => "durationMs" in o && "bytesFreed" in o && "startedAt" in o;
  if (has(line)) return line;
  for (const v of Object.values(line)) if (isRecord(v) && has(v)) return v;
  return undefined;
}

function logSink(log: ServerLog): Writable {
  const echo = process.env["BENCH_SERVER_LOG"] === "1";
  let pending = "";
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString("utf8");
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const text = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (echo) process.stderr.write(`${text}\n`);
        let line: unknown;
        try {
          line = JSON.parse(text);
        } catch {
          continue;
        }
        if (!isRecord(line)) continue;
        const level = Number(line["level"]);
        if (level >= 40) {
          if (level >= 50) log.errors++;
          else log.warnings++;
          if (log.samples.length < 5) log.samples.push(`${String(line["msg"])} ${text.slice(0, 300)}`);
        }
        const report = reportIn(line);
        if (report !== undefined) {
          const at = report["startedAt"];
          const start = typeof at === "number" ? at : Date.parse(String(at));
          const end = start + Number(report["durationMs"]);
          if (Number.isFinite(end)) log.sweeps.push({ start, end, bytesFreed: Number(report["bytesFreed"]) });
        }
      }
      done();
    },
  });
}

/**
 * Starts a server whose runtime selection lands on `driver`: `runtime: "oci"` gives crun,
 * `"gvisor"` gives runsc, and for runc a `crun` that fails its `--version` goes first on PATH.
 */
export async function startBenchServer(driver: Driver, env: Record<string, string>): Promise<BenchServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "contree-bench-gc-"));
  let shim: string | undefined;
  const path = process.env["PATH"];
  if (driver === "runc") {
    shim = await mkdtemp(join(tmpdir(), "bench-no-crun-"));
    await writeFile(join(shim, "crun"), "#!/bin/sh\nexit 127\n");
    await chmod(join(shim, "crun"), 0o755);
    process.env["PATH"] = `${shim}:${path ?? ""}`;
  }
  const restore = async () => {
    if (shim === undefined) return;
    process.env["PATH"] = path;
    await rm(shim, { recursive: true, force: true });
  };
  const log: ServerLog = { sweeps: [], warnings: 0, errors: 0, samples: [] };
  try {
    const config = {
      ...loadConfig(
        { dataDir, listen: "127.0.0.1:0" },
        { CONTREE_BOOTSTRAP_TOKEN: TOKEN, CONTREE_PRIVATE_REGISTRIES: TEST_PRIVATE_REGISTRIES, ...env },
      ),
      runtime: driver === "runsc" ? ("gvisor" as const) : ("oci" as const),
    };
    // debug: a GC pass report may be logged below info (the server logs nothing else there).
    const logger = pino(
      { level: "debug", base: { service: "contree-server" }, timestamp: pino.stdTimeFunctions.isoTime },
      logSink(log),
    );
    const server = await createServer(config, logger);
    if (server.runtime.name !== driver)
      throw new Error(`asked for ${driver}, the server selected ${server.runtime.name}`);
    const url = await server.app.listen({ host: "127.0.0.1", port: 0 });
    return {
      server,
      dataDir,
      log,
      api(p, init = {}) {
        const { json, ...rest } = init;
        const headers = new Headers(rest.headers);
        headers.set("authorization", `Bearer ${TOKEN}`);
        if (json !== undefined) headers.set("content-type", "application/json");
        return fetch(`${url}${config.pathPrefix}${p}`, {
          ...rest,
          headers,
          ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
        });
      },
      async close() {
        await server.close();
        await restore();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await restore();
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
}

/** busybox from the loopback registry, tagged so retention never takes the root of the tree. */
export async function importBusybox(t: BenchServer, reg: RegistryHandle): Promise<string> {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
  });
  const { uuid } = (await r.json()) as { uuid: string };
  const op = await waitOperation(t, uuid, 180_000);
  if (op["status"] !== "SUCCESS") throw new Error(`import failed: ${String(op["error"])}`);
  return String(op["result_image_uuid"]);
}
