/**
 * kill -9 at every point of a pass: `contree-server gc` runs in a child process that SIGKILLs
 * itself at the point named in CONTREE_TEST_GC_CRASH_AT. Afterwards every live image's layers
 * are there (rows and dirs) and an overlay of each chain mounts and reads; the next pass then
 * leaves exactly what a pass without a crash leaves.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { ImageRecord } from "../../src/metadata/repos/image-repo.js";
import { CRASH_ENV } from "../../src/snapshots/gc/crash-point.js";
import { LeaseManager } from "../../src/snapshots/leases.js";
import { runCommand } from "../../src/sys/run-command.js";
import { cleanEnv, cliCommand, REPO_ROOT } from "../harness/daemon.js";
import { type GcFixture, gcFixture } from "./gc-fixture.js";

const POINTS = [
  "mark",
  "leases",
  "layer-rows",
  "layer-dir",
  "layer-dirs",
  "tombstones",
  "staging",
  "dirs",
  "blob",
] as const;

interface Tree {
  live: ImageRecord[];
}

/** Live, tagged, deleted (leaf and inner), flattened, orphans, dead staging, blobs, an expired lease. */
async function populate(fx: GcFixture): Promise<Tree> {
  const base = await fx.image();
  const a = await fx.image(base);
  const b = await fx.image(a);
  const c = await fx.image(b);
  const d = await fx.image(c);
  await fx.flatten(d);
  const e = await fx.image(d);
  const tagged = await fx.image(base);
  await fx.tag(tagged, "keep:1");
  const leaves: ImageRecord[] = [];
  for (let i = 0; i < 4; i++) leaves.push(await fx.image(i % 2 === 0 ? a : tagged));
  const deadBranch = await fx.image(tagged);
  const deadChild = await fx.image(deadBranch);
  for (const x of [...leaves, b, c, deadBranch, deadChild]) await fx.remove(x);
  for (let i = 0; i < 3; i++) {
    const id = `rorphan${i}${"0".repeat(16)}`;
    await mkdir(fx.layers.path(id));
    await writeFile(join(fx.layers.path(id), "x"), "orphan");
  }
  await mkdir(join(fx.layers.stagingDir, "4194305.crashed"));
  await writeFile(join(fx.layers.stagingDir, "4194305.crashed", "half"), "x");
  await fx.upload("named");
  for (let i = 0; i < 3; i++) await fx.content.ingest(Readable.from([Buffer.from(`unnamed ${i}`)]));
  // a holder that died: its lease ran out
  const leases = new LeaseManager(fx.store, { ttlMs: 1 });
  await leases.acquire({ kind: "run", images: [c.id] });
  leases.close();
  await new Promise((r) => setTimeout(r, 5));
  return { live: [base, a, d, e, tagged] };
}

async function runGcChild(
  root: string,
  point: string,
): Promise<{ code: number | null; signal: string | null; err: string }> {
  const { cmd, argv } = cliCommand(["gc", "--grace", "0", "--data-dir", root]);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, {
      cwd: REPO_ROOT,
      env: cleanEnv({ [CRASH_ENV]: point }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.stdout.resume();
    p.once("error", reject);
    p.once("exit", (code, signal) => resolve({ code, signal, err }));
  });
}

/** Mounts the image's chain read-only and reads every layer's marker through the overlay. */
async function mountsAndReads(fx: GcFixture, id: string, work: string): Promise<void> {
  const img = (await fx.store.images.getAny(id)) as ImageRecord;
  expect(await fx.readable(id), `image ${id} readable`).toBe(true);
  const target = join(work, `m-${id}`);
  await mkdir(target, { recursive: true });
  const lowers = fx.layers.paths(img.mountChain);
  const opts =
    lowers.length === 1
      ? ["--bind", "-o", "ro", lowers[0] as string]
      : ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${lowers.join(":")}`];
  const m = await runCommand("mount", [...opts, target]);
  expect(m.code, m.stderr).toBe(0);
  try {
    const names = await readdir(target);
    for (const l of img.mountChain) {
      // a flat layer holds the markers of the layers it replaced, and its own name is not one
      if (l.startsWith("f")) continue;
      expect(names, `layer ${l} seen through ${id}`).toContain(`${l}.txt`);
      expect(await readFile(join(target, `${l}.txt`), "utf8")).toBe(l);
    }
  } finally {
    await runCommand("umount", [target]);
  }
}

/** What a complete pass leaves: layers of live chains, live images and their ancestors, named blobs. */
async function expectCollected(fx: GcFixture, tree: Tree): Promise<void> {
  const chains = new Set<string>();
  for (const img of tree.live)
    for (const l of (await fx.store.images.getAny(img.id))?.mountChain ?? []) chains.add(l);
  expect(await fx.layerIds()).toEqual([...chains].sort());
  expect((await readdir(fx.layers.layersDir)).sort()).toEqual([...chains].sort());
  expect(await readdir(fx.layers.stagingDir)).toEqual([]);
  const blobs: string[] = [];
  for await (const b of fx.content.list()) blobs.push(b.digest);
  expect(blobs.length).toBe(1);
  const rows = await fx.imageIds();
  for (const img of tree.live) expect(rows).toContain(img.id);
  // b and c stay as d's lineage; the deleted leaves and the dead branch go
  expect(rows.length).toBe(tree.live.length + 2);
  expect(await fx.store.db.selectFrom("leases").select("id").execute()).toEqual([]);
}

let fx: GcFixture | undefined;
let work: string | undefined;
afterEach(async () => {
  await fx?.close();
  if (work) await rm(work, { recursive: true, force: true });
  fx = undefined;
  work = undefined;
});

describe("gc killed with SIGKILL", () => {
  it("without a crash, one pass leaves the collected state", async () => {
    fx = await gcFixture();
    work = await mkdtemp(join(tmpdir(), "contree-gc-mnt-"));
    const tree = await populate(fx);
    const r = await runGcChild(fx.root, "nowhere");
    expect(r.code, r.err).toBe(0);
    await expectCollected(fx, tree);
    for (const img of tree.live) await mountsAndReads(fx, img.id, work);
  });

  for (const point of POINTS) {
    it(`at ${point}: live images intact, the next pass finishes`, async () => {
      fx = await gcFixture();
      work = await mkdtemp(join(tmpdir(), "contree-gc-mnt-"));
      const tree = await populate(fx);
      const r = await runGcChild(fx.root, point);
      expect(r.signal, r.err).toBe("SIGKILL");
      for (const img of tree.live) await mountsAndReads(fx, img.id, work);
      const next = await fx.gc().run();
      expect(next.dryRun).toBe(false);
      await expectCollected(fx, tree);
      for (const img of tree.live) await mountsAndReads(fx, img.id, work);
      expect(existsSync(fx.layers.stagingDir)).toBe(true);
    });
  }
});
