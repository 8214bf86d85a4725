/**
 * Time to render a 5,000-image lineage tree in the web console, in Debian's chromium against a
 * real server: synthetic image rows inserted into the server's metadata (the tree view reads
 * only rows), the console opened at `#/images`, and the time from the last page of data
 * arriving to the first drawn frame read from the view (`data-render-ms`: lineage, folding,
 * layout, first canvas frame), and the cost of one frame while zooming in and out by keyboard
 * (`data-draw-ms`). Also the time from navigation to that frame (5 API pages
 * included), and, as a baseline, the layout alone in Node. Medians of BENCH_RUNS reloads.
 * `BENCH_SCREENSHOT=file.png` saves the agent tree (README's picture: BENCH_IMAGES=150).
 * Two shapes: "agent" (mostly long chains with forks: chains fold) and "bushy" (every image
 * picks a random parent: almost nothing folds). Ends with the console's gzipped bundle size.
 *
 *   npm run build && npx tsx bench/web/tree-render.ts
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { startTestServer } from "../../packages/server/test/harness/in-process.js";
import type { Image } from "../../packages/web/src/api/types.js";
import { layout } from "../../packages/web/src/tree/layout.js";
import { buildLineage, viewTree } from "../../packages/web/src/tree/model.js";

const RUNS = Number(process.env["BENCH_RUNS"] ?? 5);
const N = Number(process.env["BENCH_IMAGES"] ?? 5000);
const CHROMIUM = process.env["CONTREE_CHROMIUM"] ?? "/usr/bin/chromium";
const UI_DIR = join(import.meta.dirname, "../../packages/server/dist/ui");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Deterministic pseudo-random numbers (the same tree every run). */
function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

function shape(kind: "agent" | "bushy"): { id: string; parent: string | null; tag: string | null }[] {
  const r = rng(kind === "agent" ? 1 : 2);
  const out: { id: string; parent: string | null; tag: string | null }[] = [];
  for (let i = 0; i < N; i++) {
    const parent =
      i === 0 ? null : kind === "agent" && r() < 0.9 ? out[i - 1]!.id : out[Math.floor(r() * i)]!.id;
    out.push({ id: randomUUID(), parent, tag: i % 97 === 0 ? `bench/t${i}` : null });
  }
  return out;
}

async function bench(kind: "agent" | "bushy") {
  const t = await startTestServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu"],
  });
  try {
    const project = (await t.server.store.projects.findByName("default"))!;
    const rows = shape(kind);
    const depth = new Map<string, number>();
    const t0 = Date.now();
    for (const [i, row] of rows.entries()) {
      const d = row.parent === null ? 0 : depth.get(row.parent)! + 1;
      depth.set(row.id, d);
      await t.server.store.images.insert({
        id: row.id,
        projectId: project.id,
        parentId: row.parent,
        layerId: null,
        mountChain: [],
        depth: d,
        env: null,
        operationId: null,
        size: 1000 + i,
        source: null,
        createdAt: t0 + i,
      });
      if (row.tag !== null) await t.server.store.images.setTag(project.id, row.tag, row.id);
    }
    // Baseline: lineage + folding + layout alone, in Node.
    const images: Image[] = rows.map((r, i) => ({
      uuid: r.id,
      parent_uuid: r.parent,
      tag: r.tag,
      created_at: new Date(t0 + i).toISOString(),
      operation_uuid: null,
      size: 0,
    }));
    const layoutMs: number[] = [];
    let nodes = 0;
    for (let i = 0; i < RUNS; i++) {
      const a = performance.now();
      nodes = layout(viewTree(buildLineage(images), new Set())).length - 1;
      layoutMs.push(performance.now() - a);
    }

    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    const errors: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${t.url}/ui/#token=${encodeURIComponent(t.token)}&next=/operations`);
    await page.locator("header.top").waitFor();
    const renderMs: number[] = [];
    const totalMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await page.goto(`${t.url}/ui/#/operations`);
      await page.reload();
      await page.locator("header.top").waitFor();
      const a = performance.now();
      await page.evaluate("location.hash = '#/images'");
      const stats = page.locator("[data-testid=tree-stats][data-render-ms]");
      await stats.waitFor({ timeout: 120_000 });
      totalMs.push(performance.now() - a);
      renderMs.push(Number(await stats.getAttribute("data-render-ms")));
    }
    const canvas = page.locator("canvas[data-nodes]");
    const drawn = await canvas.getAttribute("data-nodes");
    // One frame while zooming: zoom in step by step (labels appear from 0.45), then out.
    await canvas.focus();
    const frameMs: number[] = [];
    for (const key of [...Array(12).fill("+"), ...Array(12).fill("-")] as string[]) {
      await page.keyboard.press(key);
      await page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))");
      frameMs.push(Number(await canvas.getAttribute("data-draw-ms")));
    }
    const shot = process.env["BENCH_SCREENSHOT"];
    if (shot !== undefined && kind === "agent") await page.screenshot({ path: shot });
    if (errors.length > 0) throw new Error(`browser errors: ${errors.join("; ")}`);
    console.log(
      `${kind.padEnd(6)} ${N} images → ${drawn} nodes drawn (${nodes} in Node): ` +
        `render ${median(renderMs).toFixed(0)} ms (data in → first frame), ` +
        `open ${median(totalMs).toFixed(0)} ms (route change → first frame, 5 API pages included), ` +
        `layout alone in Node ${median(layoutMs).toFixed(1)} ms; medians of ${RUNS}; ` +
        `one frame while zooming: median ${median(frameMs).toFixed(1)} ms, max ${Math.max(...frameMs).toFixed(1)} ms`,
    );
  } finally {
    await browser.close();
    await t.close();
  }
}

function bundleSize(): void {
  let raw = 0;
  let gz = 0;
  const files = [
    join(UI_DIR, "index.html"),
    ...readdirSync(join(UI_DIR, "assets")).map((f) => join(UI_DIR, "assets", f)),
  ];
  for (const f of files) {
    const b = readFileSync(f);
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  console.log(
    `bundle: ${files.length} files, ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped`,
  );
}

await bench("agent");
await bench("bushy");
bundleSize();
