/**
 * The data dir over time: bytes (du of layers/ and content/, the size of metadata.db and its
 * WAL) and row counts, sampled every few seconds while the workload runs.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { sql } from "kysely";
import type { BenchServer } from "./server.js";

const run = promisify(execFile);

export interface Sample {
  /** Seconds since the workload started. */
  at: number;
  runs: number;
  layersBytes: number;
  contentBytes: number;
  dbBytes: number;
  total: number;
  liveImages: number;
  tombstones: number;
  layers: number;
  flatLayers: number;
  files: number;
  /** Longest mount chain of a live image: stays ≤ 24 while flattening keeps up. */
  maxChain: number;
  sweeps: number;
}

/** Disk usage in bytes of each path (hard links counted once, as `du` does in one call). */
async function du(paths: string[]): Promise<number[]> {
  const present = paths.filter((p) => existsSync(p));
  // GC removes directories while du walks them: du then exits 1 with the sizes it could read.
  const { stdout } =
    present.length > 0
      ? await run("du", ["-s", "-B1", ...present]).catch((e: { stdout?: string }) => ({
          stdout: e.stdout ?? "",
        }))
      : { stdout: "" };
  const by = new Map(
    stdout
      .trim()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const [n, p] = l.split("\t");
        return [p, Number(n)] as const;
      }),
  );
  return paths.map((p) => by.get(p) ?? 0);
}

async function fileSize(p: string): Promise<number> {
  return stat(p).then(
    (s) => s.size,
    () => 0,
  );
}

export async function sample(t: BenchServer, at: number, runs: number): Promise<Sample> {
  const [layersBytes = 0, contentBytes = 0] = await du([
    join(t.dataDir, "layers"),
    join(t.dataDir, "content"),
  ]);
  const db = join(t.dataDir, "metadata.db");
  const dbBytes = (await fileSize(db)) + (await fileSize(`${db}-wal`)) + (await fileSize(`${db}-shm`));
  const q = t.server.store.db;
  const images = await q
    .selectFrom("images")
    .select([
      sql<number>`sum(deleted_at is null)`.as("live"),
      sql<number>`sum(deleted_at is not null)`.as("dead"),
      sql<number>`max(case when deleted_at is null then json_array_length(mount_chain) end)`.as("chain"),
    ])
    .executeTakeFirstOrThrow();
  const layers = await q
    .selectFrom("layers")
    .select([sql<number>`count(*)`.as("n"), sql<number>`sum(kind = 'flat')`.as("flat")])
    .executeTakeFirstOrThrow();
  const files = await q.selectFrom("files").select(sql<number>`count(*)`.as("n")).executeTakeFirstOrThrow();
  return {
    at,
    runs,
    layersBytes,
    contentBytes,
    dbBytes,
    total: layersBytes + contentBytes + dbBytes,
    liveImages: Number(images.live ?? 0),
    tombstones: Number(images.dead ?? 0),
    layers: Number(layers.n),
    flatLayers: Number(layers.flat ?? 0),
    files: Number(files.n),
    maxChain: Number(images.chain ?? 0),
    sweeps: t.log.sweeps.length,
  };
}

export const mib = (b: number): string => (b / 2 ** 20).toFixed(1);

export const SAMPLE_HEAD =
  "    t   runs  total MiB  layers MiB  content MiB  db MiB  live img  tombst  layers  flat  files  chain  gc passes";

export function sampleLine(s: Sample): string {
  const c = (v: string | number, w: number) => String(v).padStart(w);
  return [
    c(`${s.at.toFixed(0)}s`, 5),
    c(s.runs, 6),
    c(mib(s.total), 10),
    c(mib(s.layersBytes), 11),
    c(mib(s.contentBytes), 12),
    c(mib(s.dbBytes), 7),
    c(s.liveImages, 9),
    c(s.tombstones, 7),
    c(s.layers, 7),
    c(s.flatLayers, 5),
    c(s.files, 6),
    c(s.maxChain, 6),
    c(s.sweeps, 10),
  ].join(" ");
}

/** The total bytes of each sample as a bar, all phases on one scale. */
export function chart(phases: Array<{ name: string; samples: Sample[] }>, width = 50): string {
  const max = Math.max(1, ...phases.flatMap((p) => p.samples.map((s) => s.total)));
  const out: string[] = [];
  for (const p of phases) {
    out.push(`${p.name}:`);
    for (const s of p.samples)
      out.push(
        `  ${`${s.at.toFixed(0)}s`.padStart(5)} ${String(s.runs).padStart(6)} runs ${mib(s.total).padStart(8)} MiB ${"#".repeat(Math.round((s.total / max) * width))}`,
      );
  }
  return out.join("\n");
}
