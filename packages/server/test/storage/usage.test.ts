/**
 * Storage usage (snapshots/usage.ts) over a real SQLite database: the exclusive/shared split of
 * layers and files on a hand-built tree with known figures, the walk's early stop checked
 * against a full union of every chain on a random tree with flattening, and the cached figure
 * (UsageTracker) a quota check reads.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompiledQuery } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../src/config/limits.js";
import { isAppError } from "../../src/core/errors.js";
import { newId } from "../../src/core/ids.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { createLogger } from "../../src/observability/logger.js";
import { computeUsage } from "../../src/snapshots/usage.js";
import { UsageTracker } from "../../src/snapshots/usage-tracker.js";
import { usageView } from "../../src/snapshots/usage-view.js";

describe("storage usage", () => {
  let dir: string;
  let store: MetadataStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "contree-usage-"));
    store = SqliteMetadataStore.open(join(dir, "metadata.db"));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const layer = (id: string, size: number, kind: "import" | "run" | "flat" = "run") =>
    store.images.insertLayer({ id, kind, chainId: null, size, entries: 1, createdAt: 0 });
  const image = async (
    projectId: string,
    chain: string[],
    parentId: string | null = null,
    operationId: string | null = null,
  ) => {
    const id = newId();
    await store.images.insert({
      id,
      projectId,
      parentId,
      layerId: chain[0] ?? null,
      mountChain: chain,
      depth: 0,
      env: null,
      operationId,
      size: 0,
      source: null,
      createdAt: 0,
    });
    return id;
  };
  const tombstone = (id: string) =>
    store.db.updateTable("images").set({ deleted_at: 1 }).where("id", "=", id).execute();

  it("splits layers and files into exclusive and shared, public bases shared and not charged", async () => {
    const pub = await store.projects.create("public");
    const a = await store.projects.create("a");
    const b = await store.projects.create("b");
    for (const [id, size] of [
      ["b1", 10],
      ["b2", 20],
      ["i1", 30],
      ["i2", 40],
      ["a1", 100],
      ["a2", 200],
      ["a3", 300],
      ["bb", 400],
      ["o", 500],
    ] as const)
      await layer(id, size);
    await image(pub.id, ["b2", "b1"]);
    // The same image imported by both tenants: its layers are reused by chain id.
    await image(a.id, ["i2", "i1"]);
    await image(b.id, ["i2", "i1"]);
    const a1 = await image(a.id, ["a1", "b2", "b1"]);
    await image(a.id, ["a2", "a1", "b2", "b1"], a1);
    // A deleted parent's layer still counts through its live child's chain; a deleted leaf's does not.
    await tombstone(a1);
    await tombstone(await image(a.id, ["a3", "i2", "i1"]));
    await image(b.id, ["bb", "i2", "i1"]);
    await store.files.upsert(a.id, "x".repeat(64), 1000);
    await store.files.upsert(a.id, "y".repeat(64), 5);
    await store.files.upsert(b.id, "x".repeat(64), 1000);

    const r = await computeUsage(store.usage, pub.id);
    const of = (id: string) => r.projects.find((p) => p.projectId === id);
    expect(of(a.id)).toEqual({
      projectId: a.id,
      images: 2,
      layers: 6,
      files: 2,
      exclusiveBytes: 300 + 5,
      sharedBytes: 10 + 20 + 30 + 40 + 1000,
      chargedBytes: 300 + 70 + 1005,
      layerBytes: { exclusive: 300, shared: 100 },
      fileBytes: { exclusive: 5, shared: 1000 },
    });
    expect(of(b.id)).toEqual({
      projectId: b.id,
      images: 2,
      layers: 3,
      files: 1,
      exclusiveBytes: 400,
      sharedBytes: 70 + 1000,
      chargedBytes: 470 + 1000,
      layerBytes: { exclusive: 400, shared: 70 },
      fileBytes: { exclusive: 0, shared: 1000 },
    });
    // The public project's own layers are its charge, and shared (anyone may build on them).
    expect(of(pub.id)).toMatchObject({
      images: 1,
      layers: 2,
      exclusiveBytes: 0,
      sharedBytes: 30,
      chargedBytes: 30,
    });
    expect(r.totals).toEqual({
      images: 5,
      layers: 9,
      layerBytes: 1600,
      unreferencedLayers: 2,
      unreferencedLayerBytes: 800,
      files: 3,
      blobs: 2,
      blobBytes: 1005,
    });

    const view = usageView(r, await store.projects.list(), DEFAULT_LIMITS, "a");
    expect(view.projects).toEqual([
      expect.objectContaining({ project: "a", charged_bytes: 1375, storage_max_bytes: null }),
    ]);
  });

  it("the walk that stops at a known layer agrees with the union of every full chain", async () => {
    const pub = await store.projects.create("public");
    const projects = [pub.id, (await store.projects.create("a")).id, (await store.projects.create("b")).id];
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const sizes = new Map<string, number>();
    const mk = async (kind: "import" | "run" | "flat") => {
      const id = `l${sizes.size}`;
      const size = 1 + rnd(1000);
      sizes.set(id, size);
      await layer(id, size, kind);
      return id;
    };
    const base = [await mk("import"), await mk("import")];
    const trees = new Map<string, Array<{ id: string; chain: string[] }>>();
    for (const p of projects) trees.set(p, [{ id: await image(p, base), chain: base }]);
    for (let n = 0; n < 600; n++) {
      const p = projects[rnd(projects.length)] as string;
      const t = trees.get(p) as Array<{ id: string; chain: string[] }>;
      // Sometimes a run from another project's (the public one's) image: a shared prefix.
      const from = rnd(6) === 0 ? (trees.get(pub.id)?.at(-1) ?? t[0]) : t[rnd(t.length)];
      const parent = from as { id: string; chain: string[] };
      let chain = [await mk("run"), ...parent.chain];
      if (chain.length > 8) chain = [await mk("run"), await mk("flat"), ...base];
      const id = await image(p, chain, parent.id);
      t.push({ id, chain });
      if (rnd(5) === 0) await tombstone(id);
    }
    const r = await computeUsage(store.usage, pub.id);

    const live = await store.db
      .selectFrom("images")
      .select(["project_id", "mount_chain"])
      .where("deleted_at", "is", null)
      .execute();
    const owners = new Map<string, Set<string>>();
    for (const row of live)
      for (const l of JSON.parse(row.mount_chain) as string[]) {
        const s = owners.get(l) ?? new Set();
        s.add(row.project_id);
        owners.set(l, s);
      }
    for (const p of projects) {
      let exclusive = 0;
      let shared = 0;
      let charged = 0;
      let layers = 0;
      for (const [l, o] of owners) {
        if (!o.has(p)) continue;
        const size = sizes.get(l) as number;
        layers++;
        if (o.size === 1 && p !== pub.id) exclusive += size;
        else shared += size;
        if (!o.has(pub.id) || p === pub.id) charged += size;
      }
      expect(r.projects.find((u) => u.projectId === p)).toMatchObject({
        layers,
        layerBytes: { exclusive, shared },
        chargedBytes: charged,
      });
    }
    expect(r.totals.unreferencedLayers).toBe(sizes.size - owners.size);
  });

  it("pages live images by rowid range, never sorting them all per page", async () => {
    const q = store.usage.liveChainPageQuery(1000, 500).compile();
    const plan = await store.db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`EXPLAIN QUERY PLAN ${q.sql}`, [...q.parameters]),
    );
    expect(plan.rows.length).toBeGreaterThan(0);
    const details = plan.rows.map((r) => r.detail).join("; ");
    expect(details).toContain("USING INTEGER PRIMARY KEY (rowid>?)");
    expect(details).not.toContain("TEMP B-TREE");
  });

  it("the cached figure grows with each new image and refuses at the quota with a 409 naming both", async () => {
    const pub = await store.projects.create("public");
    const a = await store.projects.create("a");
    await layer("base", 1000, "import");
    const parent = await image(a.id, ["base"]);
    let clock = 1000;
    const tracker = new UsageTracker({
      usage: store.usage,
      publicProjectId: async () => pub.id,
      logger: createLogger("silent"),
      now: () => clock,
    });
    await tracker.assertWithinQuota(a, 1001);
    expect(await tracker.charged(a.id)).toBe(1000);
    await layer("run1", 50);
    const op = newId();
    const child = await image(a.id, ["run1", "base"], parent, op);
    // A run that changed nothing reports its input image: nothing added.
    await tracker.imageAdded(parent, newId());
    expect(await tracker.charged(a.id)).toBe(1000);
    await tracker.imageAdded(child, op);
    // No pass ran since: the addition alone puts it at the limit.
    expect(await tracker.charged(a.id)).toBe(1050);
    const err = await tracker.assertWithinQuota(a, 1050).catch((e: unknown) => e);
    expect(isAppError(err) && err.kind).toBe("failed_precondition");
    expect(String((err as Error).message)).toContain(
      'project "a" uses 1.0 KiB (1050 bytes) of its 1.0 KiB (1050 bytes)',
    );
    expect(String((err as Error).message)).toContain("Delete images and files");
    // A pass replaces the additions it saw; deleting the child brings the project back under.
    await tombstone(child);
    clock += 1;
    await tracker.refresh();
    expect(await tracker.charged(a.id)).toBe(1000);
    await tracker.assertWithinQuota(a, 1050);
    // Unlimited costs nothing and never refuses.
    await tracker.assertWithinQuota(a, Number.MAX_SAFE_INTEGER);
    tracker.close();
  });
});
