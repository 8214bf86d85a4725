/**
 * Reads are never refused for a full disk: a view whose lease row cannot be written (SQLite full,
 * which a test cannot bring about on the real database without filling a filesystem) still reads;
 * any other failure to take the lease fails the view. The lease manager is the one stand-in.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalContentStore } from "../../src/content/local/local-content-store.js";
import { openMetadata } from "../../src/main.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";
import type { ImageRecord } from "../../src/metadata/repos/image-repo.js";
import { createLogger } from "../../src/observability/logger.js";
import { LayerStore } from "../../src/snapshots/layer-store.js";
import type { LeaseManager } from "../../src/snapshots/leases.js";
import { OverlaySnapshotter } from "../../src/snapshots/overlay/overlay-snapshotter.js";
import { PlainScratch } from "../../src/snapshots/overlay/scratch/plain-scratch.js";

describe("a view on a full disk", () => {
  let dir: string;
  let store: MetadataStore;
  let layers: LayerStore;
  let content: LocalContentStore;
  const image = (chain: string[]): ImageRecord => ({
    id: "00000000-0000-4000-8000-000000000001",
    projectId: "p",
    parentId: null,
    layerId: chain[0] ?? null,
    mountChain: chain,
    depth: 0,
    env: null,
    operationId: null,
    size: 0,
    source: null,
    createdAt: 0,
  });
  const snapshotter = (failure: Error) =>
    new OverlaySnapshotter({
      store,
      layers,
      content,
      leases: { acquire: () => Promise.reject(failure) } as unknown as LeaseManager,
      scratch: new PlainScratch(),
      runsDir: join(dir, "runs"),
      logger: createLogger("silent"),
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-view-full-"));
    store = openMetadata(dir);
    layers = await LayerStore.open(dir);
    content = await LocalContentStore.open(join(dir, "content"));
    await mkdir(join(layers.path("i0one"), "etc"), { recursive: true });
    await writeFile(join(layers.path("i0one"), "etc", "x"), "x");
  });
  afterAll(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("reads without a lease when the lease row does not fit", async () => {
    const full = Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
    const s = snapshotter(full);
    const v = await s.view(image(["i0one"]));
    expect(await v.reader().readdir("/etc")).toEqual(["x"]);
    await v.release();
    await s.close();
  });

  it("fails the view on any other failure to take the lease", async () => {
    const s = snapshotter(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" }));
    await expect(s.view(image(["i0one"]))).rejects.toThrow("disk I/O error");
    await s.close();
  });
});
