/**
 * The image diff's two walks over the same pair of layer chains: a base layer of 20,000 files in
 * 50 directories, and one top layer adding one file. The ancestor walk visits only what the top
 * layer holds; the full walk lists both merged trees. Medians of BENCH_RUNS cold runs (a fresh
 * view each, so no cached lookups).
 *
 *   npx tsx bench/inspect/diff-walk.ts
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InspectService, layerFs } from "../../packages/server/src/inspect/inspect-service.js";

const RUNS = Number(process.env["BENCH_RUNS"] ?? 5);
const dir = mkdtempSync(join(tmpdir(), "contree-diff-bench-"));
const base = join(dir, "base");
const top = join(dir, "top");
execFileSync("sh", [
  "-c",
  `mkdir -p "${base}" "${top}/d" && cd "${base}" && for i in $(seq 1 50); do mkdir d$i && (cd d$i && seq 1 400 | xargs touch); done && echo x > "${top}/d/new"`,
]);

const inspect = new InspectService();
async function once(layers: boolean, run: number): Promise<{ ms: number; entries: number }> {
  const t0 = performance.now();
  const { entries } = await inspect.diff(
    layerFs(`old${run}${layers}`, [base]),
    layerFs(`new${run}${layers}`, [top, base]),
    {
      path: "/",
      text: false,
      limit: 10_000,
      upper: layers ? { side: "new", layers: 1 } : null,
    },
  );
  let n = 0;
  for await (const _ of entries) n++;
  return { ms: performance.now() - t0, entries: n };
}

try {
  const median = async (layers: boolean) => {
    const times: number[] = [];
    let entries = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await once(layers, i);
      times.push(r.ms);
      entries = r.entries;
    }
    times.sort((a, b) => a - b);
    return { ms: times[Math.floor(times.length / 2)]!, entries };
  };
  const layers = await median(true);
  const full = await median(false);
  console.log(`ancestor walk (top layer only): ${layers.ms.toFixed(1)} ms, ${layers.entries} entries`);
  console.log(`full walk (both merged trees):  ${full.ms.toFixed(1)} ms, ${full.entries} entries`);
  console.log(`full ÷ ancestor: ${(full.ms / layers.ms).toFixed(0)}×`);
} finally {
  await inspect.close();
  rmSync(dir, { recursive: true, force: true });
}
