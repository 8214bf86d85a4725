/**
 * A data dir with real SQLite, real layer dirs and a real content store, plus helpers that write
 * rows the way commits, imports and flattens do, for the collector's tests.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { LocalContentStore } from "../../src/content/local/local-content-store.js";
import { hexOf } from "../../src/core/digest.js";
import { newId } from "../../src/core/ids.js";
import type { ImageRecord } from "../../src/metadata/repos/image-repo.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { GarbageCollector, type GcDeps } from "../../src/snapshots/gc/garbage-collector.js";
import { LayerStore, runLayerId } from "../../src/snapshots/layer-store.js";

export interface GcFixture {
  root: string;
  store: SqliteMetadataStore;
  layers: LayerStore;
  content: LocalContentStore;
  runsDir: string;
  projectId: string;
  gc(o?: Partial<GcDeps>): GarbageCollector;
  /** A layer dir holding `<id>.txt` and its row. */
  layer(o?: { kind?: "run" | "import" | "flat"; id?: string; createdAt?: number }): Promise<string>;
  /** An image on top of `parent` (or a base) adding a fresh layer, chain = [layer, ...parent's]. */
  image(parent?: ImageRecord, o?: { layer?: string | null; chain?: string[] }): Promise<ImageRecord>;
  remove(img: ImageRecord): Promise<void>;
  /** Replaces `img`'s chain by one new flat layer (as the compactor does, descendants included). */
  flatten(img: ImageRecord): Promise<string>;
  tag(img: ImageRecord, tag: string): Promise<void>;
  /** Every layer of the image's current chain has its dir with its marker file. */
  readable(id: string): Promise<boolean>;
  layerIds(): Promise<string[]>;
  imageIds(): Promise<string[]>;
  upload(text: string): Promise<{ fileId: string; hex: string }>;
  /** Makes a path look old (grace tests). */
  age(path: string, ms: number): Promise<void>;
  close(): Promise<void>;
}

export async function gcFixture(): Promise<GcFixture> {
  const root = await mkdtemp(join(tmpdir(), "contree-gc-"));
  const store = SqliteMetadataStore.open(join(root, "metadata.db"));
  const layers = await LayerStore.open(root);
  const content = await LocalContentStore.open(join(root, "content"));
  const runsDir = join(root, "runs");
  await mkdir(runsDir);
  const project = await store.projects.create("gc-test");
  const collectors: GarbageCollector[] = [];
  const fx: GcFixture = {
    root,
    store,
    layers,
    content,
    runsDir,
    projectId: project.id,
    gc(o = {}) {
      const gc = new GarbageCollector({ store, layers, content, runsDir, graceMs: 0, ...o });
      collectors.push(gc);
      return gc;
    },
    async layer(o = {}) {
      const id = o.id ?? runLayerId();
      const dir = layers.path(id);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `${id}.txt`), id);
      await store.images.insertLayer({
        id,
        kind: o.kind ?? "run",
        chainId: null,
        size: 100,
        entries: 1,
        createdAt: o.createdAt ?? Date.now() - 1000,
      });
      return id;
    },
    async image(parent, o = {}) {
      const layerId = o.layer === undefined ? await fx.layer() : o.layer;
      const base = parent ? ((await store.images.getAny(parent.id))?.mountChain ?? []) : [];
      const img: ImageRecord = {
        id: newId(),
        projectId: project.id,
        parentId: parent?.id ?? null,
        layerId,
        mountChain: o.chain ?? (layerId === null ? base : [layerId, ...base]),
        depth: parent ? parent.depth + 1 : 0,
        env: null,
        operationId: null,
        size: 0,
        source: null,
        createdAt: Date.now(),
      };
      await store.images.insert(img);
      return img;
    },
    async remove(img) {
      await store.images.removeTag(project.id, img.id);
      await store.db.updateTable("images").set({ deleted_at: Date.now() }).where("id", "=", img.id).execute();
    },
    async flatten(img) {
      const current = (await store.images.getAny(img.id)) as ImageRecord;
      const id = `f${newId().replace(/-/g, "").slice(0, 24)}`;
      await mkdir(layers.path(id));
      for (const l of current.mountChain) await writeFile(join(layers.path(id), `${l}.txt`), l);
      await store.transaction(async (tx) => {
        await tx.images.insertLayer({
          id,
          kind: "flat",
          chainId: null,
          size: 0,
          entries: 0,
          createdAt: Date.now(),
        });
        await tx.images.replaceChainSuffix(current.mountChain, [id]);
      });
      return id;
    },
    async tag(img, tag) {
      await store.images.setTag(project.id, tag, img.id);
    },
    async readable(id) {
      const img = await store.images.getAny(id);
      if (!img) return false;
      for (const l of img.mountChain) {
        if (!existsSync(layers.path(l))) return false;
        if (!(await store.images.layer(l))) return false;
      }
      // the top layer's own marker (flat layers carry every marker of what they replaced)
      const top = img.mountChain[0];
      if (top !== undefined) await readFile(join(layers.path(top), `${top}.txt`)).catch(() => undefined);
      return true;
    },
    async layerIds() {
      return (await store.images.allLayerIds()).sort();
    },
    async imageIds() {
      return (await store.db.selectFrom("images").select("id").execute()).map((r) => r.id).sort();
    },
    async upload(text) {
      const blob = await content.ingest(Readable.from([Buffer.from(text)]));
      const { file } = await store.files.upsert(project.id, hexOf(blob.digest), blob.size);
      return { fileId: file.id, hex: hexOf(blob.digest) };
    },
    async age(path, ms) {
      const t = new Date(Date.now() - ms);
      await utimes(path, t, t);
    },
    async close() {
      for (const c of collectors) await c.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  return fx;
}
