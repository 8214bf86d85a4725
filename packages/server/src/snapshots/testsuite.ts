/**
 * Conformance suite every Snapshotter backend must pass (in the spirit of containerd's
 * SnapshotterSuite): call `snapshotterConformance(name, factory)` from a backend's test file.
 * Real mounts, real metadata: the factory gives a fresh snapshotter over its own data dir plus
 * probes into the backend's storage, because "nothing half-visible, nothing left behind" can
 * only be checked there.
 */
import { lstat, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { IdRange } from "../sys/mount.js";
import type { PublishFaults, PublishStep } from "./publish.js";
import type { ImageView, PrepareOptions, Snapshotter } from "./snapshotter.js";

export interface SnapshotterFixture {
  snapshots: Snapshotter;
  store: MetadataStore;
  projectId: string;
  /**
   * An image as an import makes it: one new layer holding `tree` (path → content; "dir/" is a
   * directory, WHITEOUT a whiteout), on top of `below`'s chain when given (no commit, so no flatten is queued).
   */
  baseImage(tree: Record<string, string>, below?: ImageRecord): Promise<ImageRecord>;
  /** Names of the layer dirs in the backend's storage. */
  layerDirs(): Promise<string[]>;
  /** Half-built layers (staging). */
  staged(): Promise<string[]>;
  /** Run dirs still present. */
  runDirs(): Promise<string[]>;
  /** Mount points left below the backend's run dirs. */
  mountsLeft(): Promise<string[]>;
  /** The publish hook (crash injection), read at every step. */
  faults: { hook: PublishFaults | undefined };
  /** Stores `text` as an uploaded file of the project; its uuid. */
  upload(text: string): Promise<string>;
  /** A host id range the backend idmaps a rootfs to (null: it cannot on this host, which fails the idmap test). */
  users: IdRange | null;
  /** Chains longer than this are flattened after a commit. */
  maxChain: number;
  /** Waits for queued flattens. */
  idle(): Promise<void>;
  /** Whether writes past the cap fail while the run writes. */
  capEnforced: boolean;
  cleanup(): Promise<void>;
}

/** In a tree given to `baseImage`: an overlay whiteout (a 0/0 character device) at that path. */
export const WHITEOUT = "\0whiteout";

const STEPS: readonly PublishStep[] = ["staged", "filled", "published", "recorded"];

/** A run's snapshot key: unique per test, like an operation id. */
let keys = 0;
const nextKey = () => `run${process.pid}x${++keys}`;

export function snapshotterConformance(name: string, factory: () => Promise<SnapshotterFixture>): void {
  describe(`Snapshotter conformance: ${name}`, () => {
    let f: SnapshotterFixture;
    const opts = (o: Partial<PrepareOptions> = {}): PrepareOptions => ({
      projectId: f.projectId,
      capBytes: 64 * 1024 * 1024,
      files: {},
      cwd: "/",
      users: null,
      ...o,
    });
    /** Prepares a run from `image`, lets `write` change its rootfs, and ends the mount. */
    const runOn = async (image: ImageRecord, write: (rootfs: string) => Promise<void>, o = opts()) => {
      const key = nextKey();
      const s = await f.snapshots.prepare(key, image, o);
      await write(s.rootfs);
      await f.snapshots.unmount(key);
      return key;
    };
    const commit = (key: string, parent: ImageRecord, env?: Record<string, string>) =>
      f.snapshots.commit(key, parent, {
        projectId: f.projectId,
        operationId: key,
        ...(env === undefined ? {} : { env }),
      });
    /** Reads through a view, released afterwards. */
    const read = async <T>(image: ImageRecord, fn: (v: ImageView) => Promise<T>): Promise<T> => {
      const v = await f.snapshots.view(image);
      try {
        return await fn(v);
      } finally {
        await v.release();
      }
    };
    const names = (image: ImageRecord, path: string) =>
      read(image, async (v) => (await v.reader().readdir(path)).sort());
    const exists = (image: ImageRecord, path: string) =>
      read(image, (v) =>
        v
          .reader()
          .lstat(path)
          .then(
            () => true,
            () => false,
          ),
      );
    const content = (image: ImageRecord, path: string) =>
      read(image, async (v) => {
        const { stream } = await v.reader().openRead(path);
        const parts: Buffer[] = [];
        for await (const c of stream) parts.push(c as Buffer);
        return Buffer.concat(parts).toString();
      });
    const liveLeases = () => f.store.leases.live();
    const fresh = async (id: string) => {
      const img = await f.store.images.getAny(id);
      if (!img) throw new Error(`image ${id} is gone`);
      return img;
    };

    beforeEach(async () => {
      f = await factory();
    });
    afterEach(async () => {
      f.faults.hook = undefined;
      await f.cleanup();
    });

    it("prepare → commit → remove: the child has the run's changes, the parent does not; nothing is left", async () => {
      const base = await f.baseImage({ "etc/": "", "etc/hostname": "base\n", "old.txt": "old" });
      const key = nextKey();
      const s = await f.snapshots.prepare(key, base, opts());
      expect(await readFile(join(s.rootfs, "etc/hostname"), "utf8")).toBe("base\n");
      await writeFile(join(s.rootfs, "new.txt"), "12345");
      await rm(join(s.rootfs, "old.txt"));
      // A lease holds the mounted chain from prepare on.
      const held = (await liveLeases()).filter((l) => l.kind === "run");
      expect(held).toHaveLength(1);
      expect(held[0]?.layerIds).toEqual(base.mountChain);
      await f.snapshots.unmount(key);
      const usage = await f.snapshots.usage(key);
      expect(usage).toMatchObject({ bytes: 5, empty: false, devices: 0, reachedCap: false });
      expect(usage.entries).toBe(2);
      const r = await commit(key, base);
      expect(r.kind).toBe("committed");
      const child = r.image;
      expect(child).toMatchObject({ parentId: base.id, depth: base.depth + 1, size: base.size + 5 });
      expect(child.mountChain.slice(1)).toEqual(base.mountChain);
      expect(await fresh(child.id)).toEqual(child);
      expect(await f.store.images.layer(child.layerId as string)).toMatchObject({ kind: "run", size: 5 });
      await f.snapshots.remove(key);
      await f.snapshots.remove(key); // idempotent
      expect(await content(child, "/new.txt")).toBe("12345");
      expect(await exists(child, "/old.txt")).toBe(false);
      expect(await exists(base, "/new.txt")).toBe(false);
      expect(await content(base, "/old.txt")).toBe("old");
      expect(await f.runDirs()).toEqual([]);
      expect(await f.mountsLeft()).toEqual([]);
      expect(await f.staged()).toEqual([]);
      expect(await liveLeases()).toEqual([]);
    });

    it("a run that changed nothing commits as unchanged (no layer, no image); an env change alone makes an image without a layer", async () => {
      const base = await f.baseImage({ "a.txt": "a" });
      const layersBefore = (await f.layerDirs()).sort();
      const k1 = await runOn(base, async () => {});
      const r1 = await commit(k1, base);
      expect(r1).toEqual({ kind: "unchanged", image: base });
      await f.snapshots.remove(k1);
      const k2 = await runOn(base, async () => {});
      const r2 = await commit(k2, base, { FOO: "bar" });
      await f.snapshots.remove(k2);
      expect(r2.kind).toBe("committed");
      expect(r2.image).toMatchObject({ layerId: null, mountChain: base.mountChain, env: { FOO: "bar" } });
      expect((await f.layerDirs()).sort()).toEqual(layersBefore);
    });

    it("keeps whiteouts and opaque directories through commits, views and later runs", async () => {
      const base = await f.baseImage({
        "d/": "",
        "d/a": "a",
        "d/b": "b",
        f: "f",
        "keep/": "",
        "keep/x": "x",
      });
      const k1 = await runOn(base, async (root) => {
        // Replacing a directory makes it opaque; deleting a file leaves a whiteout.
        await rm(join(root, "d"), { recursive: true });
        await mkdir(join(root, "d"));
        await writeFile(join(root, "d/c"), "c");
        await rm(join(root, "f"));
        await rm(join(root, "keep/x"));
      });
      const child = (await commit(k1, base)).image;
      await f.snapshots.remove(k1);
      expect(await names(child, "/d")).toEqual(["c"]);
      expect(await exists(child, "/f")).toBe(false);
      expect(await names(child, "/keep")).toEqual([]);
      expect(await names(base, "/d")).toEqual(["a", "b"]);
      // A run from the child sees the same through the mount, and builds on it.
      const k2 = await runOn(child, async (root) => {
        expect((await readdir(join(root, "d"))).sort()).toEqual(["c"]);
        expect((await readdir(root)).sort()).toEqual(["d", "keep"]);
        await writeFile(join(root, "d/a"), "a2");
        await writeFile(join(root, "f"), "f2");
      });
      const grandchild = (await commit(k2, child)).image;
      await f.snapshots.remove(k2);
      expect(await names(grandchild, "/d")).toEqual(["a", "c"]);
      expect(await content(grandchild, "/d/a")).toBe("a2");
      expect(await content(grandchild, "/f")).toBe("f2");
    });

    it("holds the cap: a run cannot write past it (where enforced) and its usage says it reached it", async () => {
      const base = await f.baseImage({ "a.txt": "a" });
      const cap = 2 * 1024 * 1024;
      const key = nextKey();
      const s = await f.snapshots.prepare(key, base, opts({ capBytes: cap }));
      const wrote = await writeFile(join(s.rootfs, "big"), Buffer.alloc(4 * cap)).then(
        () => "ok",
        (err: NodeJS.ErrnoException) => err.code,
      );
      await f.snapshots.unmount(key);
      const usage = await f.snapshots.usage(key);
      if (f.capEnforced) {
        expect(["ENOSPC", "EDQUOT"]).toContain(wrote);
        expect(usage.reachedCap).toBe(true);
        expect(usage.bytes).toBeLessThanOrEqual(cap);
      } else {
        // Not enforced while writing: the caller sees the size after the run and refuses the image.
        expect(wrote).toBe("ok");
        expect(usage.bytes).toBe(4 * cap);
      }
      await f.snapshots.remove(key);
      expect(await f.mountsLeft()).toEqual([]);
    });

    it("a prepare that fails half-way (a file that does not exist) leaves nothing once removed", async () => {
      const base = await f.baseImage({ "a.txt": "a" });
      const key = nextKey();
      const missing = { "/x": { uuid: "00000000-0000-0000-0000-000000000000", uid: 0, gid: 0, mode: "644" } };
      await expect(f.snapshots.prepare(key, base, opts({ files: missing }))).rejects.toSatisfy(
        (e: unknown) => isAppError(e) && e.kind === "not_found",
      );
      await f.snapshots.remove(key);
      expect(await f.runDirs()).toEqual([]);
      expect(await f.mountsLeft()).toEqual([]);
      expect(await liveLeases()).toEqual([]);
    });

    for (const idmapped of [false, true]) {
      it(`writes uploaded files with their owners and modes${idmapped ? ", through an idmapped rootfs (user namespace)" : ""}`, async () => {
        // A prerequisite (the overlay backend needs the native addon): missing, the test fails.
        if (idmapped) expect(f.users, "this host cannot idmap a rootfs").not.toBeNull();
        const users = idmapped ? f.users : null;
        const shift = users?.hostId ?? 0;
        const base = await f.baseImage({ "etc/": "", "etc/hostname": "h" });
        const uuid = await f.upload("hello");
        const key = nextKey();
        const s = await f.snapshots.prepare(
          key,
          base,
          opts({
            users,
            cwd: "/work/here",
            files: {
              "/etc/greeting": { uuid, uid: 1000, gid: 1001, mode: "640" },
              "/new/dir/f": { uuid, uid: 0, gid: 0, mode: "755" },
            },
          }),
        );
        // What the sandbox sees: in-image owners shifted into its range.
        const g = await lstat(join(s.rootfs, "etc/greeting"));
        expect([g.uid, g.gid, g.mode & 0o7777]).toEqual([1000 + shift, 1001 + shift, 0o640]);
        expect(await readFile(join(s.rootfs, "etc/greeting"), "utf8")).toBe("hello");
        expect((await lstat(join(s.rootfs, "etc/hostname"))).uid).toBe(shift);
        expect((await lstat(join(s.rootfs, "work/here"))).uid).toBe(shift);
        await f.snapshots.unmount(key);
        const child = (await commit(key, base)).image;
        await f.snapshots.remove(key);
        // What the layer keeps: the in-image owners, whatever the range was.
        const st = await read(child, (v) => v.reader().lstat("/etc/greeting"));
        expect([st.uid, st.gid, st.mode]).toEqual([1000, 1001, 0o640]);
        expect((await read(child, (v) => v.reader().lstat("/new/dir/f"))).mode).toBe(0o755);
        expect((await read(child, (v) => v.reader().lstat("/work/here"))).type).toBe("dir");
        expect(await content(child, "/new/dir/f")).toBe("hello");
      });
    }

    it("makes a missing cwd (a directory) and leaves an existing one alone", async () => {
      const base = await f.baseImage({ "w/": "" });
      const key = nextKey();
      const s = await f.snapshots.prepare(key, base, opts({ cwd: "/deep/work/dir" }));
      expect((await readdir(join(s.rootfs, "deep/work"))).sort()).toEqual(["dir"]);
      await f.snapshots.remove(key);
    });

    it("flattens chains past the threshold: every image keeps its exact filesystem, lineage never changes", async () => {
      const base = await f.baseImage({ "base.txt": "b" });
      const depth = f.maxChain * 2 + 3;
      const images: ImageRecord[] = [base];
      for (let i = 0; i < depth; i++) {
        const parent = images[images.length - 1] as ImageRecord;
        const key = await runOn(parent, async (root) => {
          await writeFile(join(root, `f${i}`), String(i));
          // Every 4th run deletes the previous file and replaces a directory: whiteouts and
          // opaque dirs must survive flattening.
          if (i % 4 === 3) {
            await rm(join(root, `f${i - 1}`));
            await rm(join(root, "dir"), { recursive: true, force: true });
            await mkdir(join(root, "dir"));
            await writeFile(join(root, "dir", `only${i}`), "");
          }
        });
        images.push((await commit(key, parent)).image);
        await f.snapshots.remove(key);
      }
      await f.idle();
      const last = await fresh((images[images.length - 1] as ImageRecord).id);
      expect(last.mountChain.length).toBeLessThanOrEqual(f.maxChain + 1);
      expect(last.depth).toBe(depth);
      const expected = ["base.txt", "dir"];
      for (let i = 0; i < depth; i++) if (!(i % 4 === 2 && i + 1 < depth)) expected.push(`f${i}`);
      expect(await names(last, "/")).toEqual(expected.sort());
      expect(await names(last, "/dir")).toEqual([`only${depth - 1 - ((depth - 1 - 3) % 4)}`]);
      for (let i = 1; i < images.length; i++) {
        const img = await fresh((images[i] as ImageRecord).id);
        expect(img.parentId).toBe((images[i - 1] as ImageRecord).id);
        expect(await content(img, `/f${i - 1}`)).toBe(String(i - 1));
      }
      // A run from the flattened image sees the same through its mount.
      const key = await runOn(last, async (root) => {
        expect((await readdir(root)).sort()).toEqual(expected.sort());
      });
      await f.snapshots.remove(key);
      expect(await f.staged()).toEqual([]);
      expect(await liveLeases()).toEqual([]);
    });

    /** An image whose chain is one layer past the flatten threshold (built without commits). */
    const deepImage = async () => {
      let img = await f.baseImage({ "0": "0", "dir/": "", "dir/gone": "" });
      for (let i = 1; i <= f.maxChain; i++)
        img = await f.baseImage(
          i === 2 ? { [String(i)]: String(i), "dir/gone": WHITEOUT } : { [String(i)]: String(i) },
          img,
        );
      expect(img.mountChain).toHaveLength(f.maxChain + 1);
      return img;
    };

    it("a run keeps the chain it mounted while a flatten gives its image a new one", async () => {
      const img = await deepImage();
      const key = nextKey();
      const s = await f.snapshots.prepare(key, img, opts());
      const flat = await f.snapshots.flatten(img);
      expect(flat).not.toBeNull();
      expect((await fresh(img.id)).mountChain).toEqual([flat]);
      const lease = (await liveLeases()).find((l) => l.kind === "run");
      expect(lease?.layerIds).toEqual(img.mountChain);
      expect(await readFile(join(s.rootfs, "1"), "utf8")).toBe("1");
      await writeFile(join(s.rootfs, "new"), "n");
      await f.snapshots.unmount(key);
      // The child builds on the image's current (flat) chain.
      const child = (await commit(key, img)).image;
      expect(child.mountChain.slice(1)).toEqual([flat]);
      await f.snapshots.remove(key);
      expect(await liveLeases()).toEqual([]);
      expect(await names(child, "/")).toEqual(
        ["dir", "new", ...Array.from({ length: f.maxChain + 1 }, (_, i) => String(i))].sort(),
      );
      expect(await names(child, "/dir")).toEqual([]);
    });

    it("commits concurrent runs on one parent into distinct images, each with only its own changes", async () => {
      const base = await f.baseImage({ shared: "s" });
      const n = 6;
      const keys = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          runOn(base, async (root) => {
            await writeFile(join(root, `mine-${i}`), String(i));
            await writeFile(join(root, "shared"), `by ${i}`);
          }),
        ),
      );
      const results = await Promise.all(keys.map((k) => commit(k, base)));
      await Promise.all(keys.map((k) => f.snapshots.remove(k)));
      const ids = new Set(results.map((r) => r.image.id));
      const layers = new Set(results.map((r) => r.image.layerId));
      expect(ids.size).toBe(n);
      expect(layers.size).toBe(n);
      for (const [i, r] of results.entries()) {
        expect(r.image.parentId).toBe(base.id);
        expect((await names(r.image, "/")).filter((x) => x.startsWith("mine-"))).toEqual([`mine-${i}`]);
        expect(await content(r.image, "/shared")).toBe(`by ${i}`);
      }
      expect(await content(base, "/shared")).toBe("s");
    });

    for (const step of STEPS) {
      it(`a commit failing at "${step}" leaves nothing half-visible (no row without its dir, no image without its layer)`, async () => {
        const base = await f.baseImage({ "a.txt": "a" });
        const dirsBefore = new Set(await f.layerDirs());
        const key = await runOn(base, (root) => writeFile(join(root, "b.txt"), "b"));
        let seen: { layerRow: boolean; layerDir: boolean; image: boolean } | undefined;
        const imageOfRun = async () =>
          (await f.store.db.selectFrom("images").select("id").where("operation_id", "=", key).execute())
            .length > 0;
        f.faults.hook = async (s, layerId) => {
          if (s !== step) return;
          // What a crash right here would leave behind.
          seen = {
            layerRow: (await f.store.images.layer(layerId)) !== undefined,
            layerDir: (await f.layerDirs()).includes(layerId),
            image: await imageOfRun(),
          };
          throw Object.assign(new Error(`injected failure at ${step}`), { code: "EIO" });
        };
        await expect(commit(key, base)).rejects.toThrow();
        f.faults.hook = undefined;
        expect(seen).toBeDefined();
        const at = seen as { layerRow: boolean; layerDir: boolean; image: boolean };
        // A crash at this step: a row never names a missing dir, an image never a missing layer.
        if (at.layerRow) expect(at.layerDir).toBe(true);
        expect(at.image).toBe(at.layerRow);
        expect(at.layerRow).toBe(step === "recorded");
        expect(await imageOfRun()).toBe(step === "recorded");
        expect(at.layerDir).toBe(step === "published" || step === "recorded");
        const added = (await f.layerDirs()).filter((d) => !dirsBefore.has(d));
        const rows = await Promise.all(added.map((d) => f.store.images.layer(d)));
        if (step === "recorded") {
          // The transaction committed before the "crash": the layer is whole and recorded.
          expect(added).toHaveLength(1);
          expect(rows[0]).toBeDefined();
        } else {
          // Rolled back: no layer dir, no row, nothing in staging.
          expect(added).toEqual([]);
        }
        expect(await f.staged()).toEqual([]);
        await f.snapshots.remove(key);
        expect(await f.runDirs()).toEqual([]);
        expect(await f.mountsLeft()).toEqual([]);
        // The parent is untouched and still reads.
        expect(await content(await fresh(base.id), "/a.txt")).toBe("a");
      });

      it(`a flatten failing at "${step}" leaves the image on its old chain, or whole on the new one`, async () => {
        const img = await deepImage();
        const dirsBefore = new Set(await f.layerDirs());
        f.faults.hook = (s) => {
          if (s === step) throw new Error(`injected failure at ${step}`);
        };
        await expect(f.snapshots.flatten(img)).rejects.toThrow(`injected failure at ${step}`);
        f.faults.hook = undefined;
        const after = await fresh(img.id);
        const added = (await f.layerDirs()).filter((d) => !dirsBefore.has(d));
        if (step === "recorded") {
          expect(after.mountChain).toHaveLength(1);
          expect(added).toEqual(after.mountChain);
        } else {
          expect(after.mountChain).toEqual(img.mountChain);
          expect(added).toEqual([]);
        }
        expect(await f.staged()).toEqual([]);
        expect(await f.mountsLeft()).toEqual([]);
        expect(await liveLeases()).toEqual([]);
        for (let i = 0; i <= f.maxChain; i++) expect(await content(after, `/${i}`)).toBe(String(i));
        expect(await names(after, "/dir")).toEqual([]);
      });
    }

    it("a view reads without mounting and holds a lease until released; an image without layers is empty", async () => {
      const base = await f.baseImage({ "x/": "", "x/y": "y" });
      const v = await f.snapshots.view(base);
      expect((await liveLeases()).map((l) => [l.kind, l.imageIds, l.layerIds])).toEqual([
        ["inspect", [base.id], base.mountChain],
      ]);
      expect(await v.reader().readdir("/x")).toEqual(["y"]);
      expect(await f.mountsLeft()).toEqual([]);
      await v.release();
      await v.release();
      expect(await liveLeases()).toEqual([]);
      const empty = await f.snapshots.view({ ...base, id: "empty", mountChain: [] });
      expect(await empty.reader().readdir("/")).toEqual([]);
      expect(empty.key).not.toBe(v.key);
      await empty.release();
      // No host path in what a view answers.
      await expect(v.reader().lstat("/nope")).rejects.toSatisfy(
        (e: unknown) => isAppError(e) && !e.message.includes("/layers"),
      );
    });
  });
}
