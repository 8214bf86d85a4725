/**
 * What the commit-time secret scan and the output mask cost.
 *
 * Scan: an upper of 64 MiB in 2,000 files (plus one large file of 64 MiB), with the needles of
 * one secret (raw, 3×2 base64 cores, 2 hex = 9). Baseline: the same files read in the same 1 MiB
 * chunks without looking at them. Page cache warm for both (a commit scans what the run just wrote).
 * Mask: 256 MiB of output through SecretMask (one value) vs a PassThrough.
 * Medians of BENCH_RUNS runs.
 *
 *   npx tsx bench/secrets/scan.ts
 */
import { randomBytes } from "node:crypto";
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Transform } from "node:stream";
import { SecretMask } from "../../packages/server/src/instances/secret-mask.js";
import { leakNeedles } from "../../packages/server/src/secrets/leak-needles.js";
import { searchTree } from "../../packages/server/src/snapshots/overlay/byte-search.js";

const RUNS = Number(process.env["BENCH_RUNS"] ?? 5);
const dir = mkdtempSync(join(tmpdir(), "contree-secret-bench-"));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

try {
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(dir, `d${d}`));
    for (let f = 0; f < 100; f++) writeFileSync(join(dir, `d${d}`, `f${f}`), randomBytes(32 * 1024));
  }
  writeFileSync(join(dir, "big"), randomBytes(64 * 1024 * 1024));
  const needles = leakNeedles("K", Buffer.from(`sk-${randomBytes(20).toString("hex")}`));

  async function readAll(root: string): Promise<void> {
    for (const name of await readdir(root)) {
      const p = join(root, name);
      const st = await lstat(p);
      if (st.isDirectory()) await readAll(p);
      else for await (const _ of createReadStream(p, { highWaterMark: 1024 * 1024 }));
    }
  }
  await readAll(dir);
  const scan: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let t = performance.now();
    await readAll(dir);
    base.push(performance.now() - t);
    t = performance.now();
    if ((await searchTree(dir, needles)) !== null) throw new Error("found");
    scan.push(performance.now() - t);
  }
  const mb = 128;
  console.log(
    `scan of ${mb} MiB (2,001 files, ${needles.length} needles): median ${median(scan).toFixed(0)} ms (${(mb / (median(scan) / 1000)).toFixed(0)} MiB/s); plain read ${median(base).toFixed(0)} ms; ratio ${(median(scan) / median(base)).toFixed(2)}`,
  );

  const chunk = randomBytes(64 * 1024);
  async function pump(t: Transform): Promise<number> {
    const start = performance.now();
    t.resume();
    for (let i = 0; i < 4096; i++) if (!t.write(chunk)) await new Promise((r) => t.once("drain", r));
    t.end();
    await new Promise((r) => t.once("end", r));
    return performance.now() - start;
  }
  const masked: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    plain.push(await pump(new PassThrough()));
    masked.push(
      await pump(
        new SecretMask([{ name: "K", bytes: Buffer.from(`sk-${randomBytes(20).toString("hex")}`) }]),
      ),
    );
  }
  console.log(
    `output mask, 256 MiB in 64 KiB writes: median ${median(masked).toFixed(0)} ms (${(256 / (median(masked) / 1000)).toFixed(0)} MiB/s); PassThrough ${median(plain).toFixed(0)} ms; ratio ${(median(masked) / median(plain)).toFixed(2)}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
