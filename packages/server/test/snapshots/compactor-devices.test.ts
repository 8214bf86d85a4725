/**
 * Flattening a chain whose lower layers come from an older data dir (live device nodes, written
 * before the applier stored stand-ins) must not carry a live node into the flat layer, and must
 * keep the stand-ins' device records (cp -a through the read-only overlay keeps trusted xattrs).
 * The start-up conversion runs first, as it does before any flatten in the server.
 */
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../src/core/ids.js";
import { writeInertDevice } from "../../src/layers/inert-device.js";
import { MergedView } from "../../src/layers/merged-view.js";
import { openMetadata } from "../../src/main.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";
import type { ImageRecord } from "../../src/metadata/repos/image-repo.js";
import { createLogger } from "../../src/observability/logger.js";
import { Compactor } from "../../src/snapshots/compactor.js";
import { LayerStore } from "../../src/snapshots/layer-store.js";
import { LeaseManager } from "../../src/snapshots/leases.js";

describe("compactor and device nodes", () => {
  let dir: string;
  let store: MetadataStore;
  let layers: LayerStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "contree-compact-dev-"));
    store = openMetadata(dir);
    layers = await LayerStore.open(dir);
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("flattens live nodes of old layers into stand-ins and keeps existing stand-ins", async () => {
    const old = "i0ldlayer";
    const top = "r0toplayer";
    mkdirSync(join(layers.path(old), "probe"), { recursive: true });
    execFileSync("mknod", ["-m", "666", join(layers.path(old), "probe/kmsg"), "c", "1", "11"]);
    execFileSync("mknod", ["-m", "660", join(layers.path(old), "probe/disk"), "b", "254", "0"]);
    mkdirSync(layers.path(top));
    writeFileSync(join(layers.path(top), "file"), "x");
    writeInertDevice(join(layers.path(top), "vcs"), { kind: "char", major: 7, minor: 0, mode: 0o600 });
    const project = await store.projects.create("p");
    const img: ImageRecord = {
      id: newId(),
      projectId: project.id,
      parentId: null,
      layerId: top,
      mountChain: [top, old],
      depth: 0,
      env: null,
      operationId: null,
      size: 0,
      source: null,
      createdAt: Date.now(),
    };
    await store.transaction(async (tx) => {
      for (const id of [old, top])
        await tx.images.insertLayer({ id, kind: "run", chainId: null, size: 0, entries: 0, createdAt: 0 });
      await tx.images.insert(img);
    });
    const scratch = join(dir, "scratch");
    mkdirSync(scratch);
    expect(await layers.neutralizeLegacyDevices()).toBe(2);
    const leases = new LeaseManager(store);
    const compactor = new Compactor(
      { store, layers, leases, scratchDir: scratch, logger: createLogger("silent") },
      1,
    );
    const flat = await compactor.flatten(img);
    leases.close();
    if (flat === null) throw new Error("nothing was flattened");
    const flatDir = layers.path(flat);
    for (const p of ["probe/kmsg", "probe/disk", "vcs"]) {
      const st = lstatSync(join(flatDir, p));
      expect(st.isFile() && st.size === 0 && (st.mode & 0o7777) === 0, p).toBe(true);
    }
    const view = new MergedView([flatDir]);
    expect(await view.lstat("/probe/kmsg")).toMatchObject({ type: "char", mode: 0o666 });
    expect(await view.lstat("/probe/disk")).toMatchObject({ type: "block", mode: 0o660 });
    expect(await view.lstat("/vcs")).toMatchObject({ type: "char", mode: 0o600 });
    expect((await store.images.getAny(img.id))?.mountChain).toEqual([flat]);
  });
});

describe("layers of an older data dir", () => {
  it("get their live device nodes replaced once, at start-up", async () => {
    const dir = mkdtempSync(join(tmpdir(), "contree-legacy-dev-"));
    try {
      const layers = await LayerStore.open(dir);
      mkdirSync(join(layers.path("i0legacy"), "dev"), { recursive: true });
      execFileSync("mknod", ["-m", "666", join(layers.path("i0legacy"), "dev/kmsg"), "c", "1", "11"]);
      execFileSync("mknod", [join(layers.path("i0legacy"), "dev/wh"), "c", "0", "0"]);
      expect(await layers.neutralizeLegacyDevices()).toBe(1);
      expect(lstatSync(join(layers.path("i0legacy"), "dev/kmsg")).isFile()).toBe(true);
      expect(lstatSync(join(layers.path("i0legacy"), "dev/wh")).isCharacterDevice()).toBe(true);
      expect(await new MergedView([layers.path("i0legacy")]).lstat("/dev/kmsg")).toMatchObject({
        type: "char",
      });
      // a marker keeps later starts from walking every layer again
      execFileSync("mknod", [join(layers.path("i0legacy"), "dev/late"), "c", "1", "3"]);
      expect(await layers.neutralizeLegacyDevices()).toBeNull();
      // reclaim does not take the marker for an orphan layer
      expect(await layers.reclaim(new Set(["i0legacy"]), 0)).toEqual({ staging: 0, orphans: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
