/**
 * Storage usage (snapshots/usage.ts) over a synthetic metadata database of 100,000 live images:
 *   npx tsx bench/usage/usage-100k.ts [--images 100000] [--projects 20] [--rounds 5]
 *
 * The tree: a `public` project with two imported bases, each tenant importing two images (one
 * of them also imported by the next tenant: shared layers) and running from them and from the
 * public bases; every run picks a random earlier image of its project as parent (recent ones
 * more often, like a tree search), adds a layer, and chains longer than 24 are flattened into
 * one layer over the base. 10% of the images are tombstones, 5,000 upload rows (a fifth of them
 * with a digest another project also has).
 *
 * Prints the median of `computeUsage` (the paged in-code pass the server uses), the longest
 * event-loop stall during it, and the median of the same split done in one SQL statement with
 * json_each, for comparison (it agrees, or the bench fails).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import { SqliteMetadataStore } from "../../packages/server/src/metadata/sqlite/sqlite-metadata-store.js";
import { computeUsage } from "../../packages/server/src/snapshots/usage.js";

const { values } = parseArgs({
  options: {
    images: { type: "string", default: "100000" },
    projects: { type: "string", default: "20" },
    rounds: { type: "string", default: "5" },
  },
});
const N = Number(values.images);
const P = Number(values.projects);
const ROUNDS = Number(values.rounds);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

let seq = 0;
const id = (p: string) => `${p}${(seq++).toString(36).padStart(23, "0")}`;
let rnd = 42;
const random = () => {
  rnd = (rnd * 1103515245 + 12345) % 2147483648;
  return rnd / 2147483648;
};

const dir = await mkdtemp(join(tmpdir(), "bench-usage-"));
try {
  const path = join(dir, "metadata.db");
  await SqliteMetadataStore.open(path).close();
  const raw = new BetterSqlite3(path);
  raw.pragma("journal_mode = WAL");
  const insProject = raw.prepare(
    "INSERT INTO projects (id, name, limits, created_at) VALUES (?, ?, '{}', 0)",
  );
  const insLayer = raw.prepare(
    "INSERT INTO layers (id, kind, chain_id, size, entries, created_at) VALUES (?, ?, NULL, ?, 1, 0)",
  );
  const insImage = raw.prepare(
    "INSERT INTO images (id, project_id, parent_id, layer_id, mount_chain, depth, size, created_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)",
  );
  const insFile = raw.prepare(
    "INSERT INTO files (id, project_id, sha256, size, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0)",
  );
  const layer = (kind: string, size: number) => {
    const l = id("l");
    insLayer.run(l, kind, size);
    return l;
  };
  interface Img {
    id: string;
    chain: string[];
    base: string[];
  }
  const image = (project: string, parent: Img | null, chain: string[], base: string[]): Img => {
    const i = id("i");
    insImage.run(
      i,
      project,
      parent?.id ?? null,
      chain[0] ?? null,
      JSON.stringify(chain),
      0,
      random() < 0.1 ? 1 : null,
    );
    return { id: i, chain, base };
  };
  const importChain = () => Array.from({ length: 5 }, () => layer("import", 20_000_000));
  raw.transaction(() => {
    const pub = id("p");
    insProject.run(pub, "public");
    const pubImages = [importChain(), importChain()].map((c) => image(pub, null, c, c));
    const projects: Array<{ id: string; images: Img[] }> = [];
    let sharedImport: string[] = importChain();
    for (let p = 0; p < P; p++) {
      const pid = id("p");
      insProject.run(pid, `t${p}`);
      const own = importChain();
      const imgs = [image(pid, null, own, own), image(pid, null, sharedImport, sharedImport)];
      sharedImport = importChain();
      projects.push({ id: pid, images: [...imgs, ...pubImages] });
    }
    for (let n = projects.length * 2 + 2; n < N; n++) {
      const pr = projects[Math.floor(random() * projects.length)] as (typeof projects)[number];
      // recent images more often: a search deepens its promising branches
      const k = pr.images.length;
      const parent = pr.images[Math.max(0, k - 1 - Math.floor(k * random() ** 3))] as Img;
      const l = layer("run", Math.floor(random() * 2_000_000));
      let chain = [l, ...parent.chain];
      if (chain.length > 24) chain = [l, layer("flat", 50_000_000), ...parent.base];
      pr.images.push(image(pr.id, parent, chain, parent.base));
    }
    for (let f = 0; f < 5000; f++) {
      const pr = projects[f % projects.length] as (typeof projects)[number];
      const digest = f % 5 === 0 ? `shared${f % 50}` : `own${f}`;
      try {
        insFile.run(id("f"), pr.id, digest, 100_000);
      } catch {
        // the same digest twice in one project: one row (UNIQUE), as uploads do
      }
    }
  })();
  raw.pragma("wal_checkpoint(TRUNCATE)");

  const store = SqliteMetadataStore.open(path);
  const pubId = (await store.projects.findByName("public"))?.id;
  const codeTimes: number[] = [];
  const codeCpu: number[] = [];
  const stalls: number[] = [];
  let report: Awaited<ReturnType<typeof computeUsage>> | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    report = await computeUsage(store.usage, pubId);
    codeTimes.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    codeCpu.push((c.user + c.system) / 1000);
    delay.disable();
    stalls.push(delay.max / 1e6);
  }
  const sqlSplit = raw.prepare(`
    WITH pl AS (SELECT DISTINCT i.project_id AS project_id, j.value AS layer_id
                FROM images i, json_each(i.mount_chain) j WHERE i.deleted_at IS NULL),
         lc AS (SELECT layer_id, count(*) AS n, max(project_id = ?) AS pub FROM pl GROUP BY layer_id)
    SELECT pl.project_id, count(*) AS layers,
      sum(CASE WHEN lc.n = 1 AND lc.pub = 0 THEN l.size ELSE 0 END) AS exclusive,
      sum(CASE WHEN lc.n > 1 OR lc.pub = 1 THEN l.size ELSE 0 END) AS shared
    FROM pl JOIN lc ON lc.layer_id = pl.layer_id JOIN layers l ON l.id = pl.layer_id
    GROUP BY pl.project_id`);
  const sqlTimes: number[] = [];
  let sqlRows: Array<{ project_id: string; exclusive: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    sqlRows = sqlSplit.all(pubId) as typeof sqlRows;
    sqlTimes.push(performance.now() - t0);
  }
  // The two must agree, or the figure below measures a wrong computation.
  for (const row of sqlRows) {
    const mine = report?.projects.find((p) => p.projectId === row.project_id);
    if (mine?.layerBytes.exclusive !== row.exclusive)
      throw new Error(`mismatch for ${row.project_id}: ${mine?.layerBytes.exclusive} vs ${row.exclusive}`);
  }
  const t = report?.totals;
  const chainLen = raw.prepare("SELECT avg(json_array_length(mount_chain)) AS a FROM images").get() as {
    a: number;
  };
  console.log(
    `images ${t?.images} live (of ${N}), layers ${t?.layers}, unreferenced ${t?.unreferencedLayers}, files ${t?.files}, blobs ${t?.blobs}, mean chain ${chainLen.a.toFixed(1)}`,
  );
  console.log(
    `computeUsage (paged, in code)   : median ${median(codeTimes).toFixed(0)} ms of ${ROUNDS} [${codeTimes.map((x) => x.toFixed(0)).join(", ")}]`,
  );
  console.log(
    `same split in SQL (json_each):    median ${median(sqlTimes).toFixed(0)} ms of ${ROUNDS} [${sqlTimes.map((x) => x.toFixed(0)).join(", ")}]`,
  );
  console.log(
    `computeUsage CPU time: median ${median(codeCpu).toFixed(0)} ms; load average ${loadavg()[0]?.toFixed(1)} on ${cpus().length} CPUs`,
  );
  console.log(`longest event-loop stall during computeUsage: median ${median(stalls).toFixed(0)} ms`);
  console.log(`heap used ${(process.memoryUsage().heapUsed / 1024 / 1024).toFixed(0)} MiB`);
  raw.close();
  await store.close();
} finally {
  if (process.env.KEEP) console.log("kept", dir);
  else await rm(dir, { recursive: true, force: true });
}
