import { mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { ContentStore } from "../content/content-store.js";
import { type Digest, digestFromHex } from "../core/digest.js";
import { isStorageFull, notFound, payloadTooLarge } from "../core/errors.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import { type MountRootfsOptions, mountRootfs, unmount } from "../runtime/rootfs.js";
import type { IdRange } from "../runtime/runtime-driver.js";
import type { RunScratch, ScratchBackend } from "../runtime/scratch/scratch.js";
import type { LayerStore } from "../snapshots/layer-store.js";
import type { CleanupStack, CleanupStep } from "./cleanup-stack.js";
import { ensureDir, isPlainDirInside, writeFileInto } from "./rootfs-writer.js";
import type { InstanceMetadata } from "./spawn-request.js";

interface RootfsDeps {
  store: MetadataStore;
  layers: LayerStore;
  content: ContentStore;
  scratch: ScratchBackend;
}

/** A run's file system, mounted and holding its uploaded files; every part is on the run's cleanup stack. */
export interface RunRootfs {
  dir: string;
  rootfs: string;
  bundle: string;
  scratch: RunScratch;
  /** Undoes the scratch (what the run wrote) early: the commit gives it back on a full disk. */
  releaseScratch: CleanupStep;
  /** Unmounts the rootfs (it syncs the upper to disk); done after the run, before the snapshot. */
  unmount: CleanupStep;
}

/**
 * runs/<op>/{upper,work,rootfs,bundle}: the overlay of the image's mount chain over a fresh
 * scratch, with the uploaded files written in and the cwd made. With a user range the layers
 * are idmapped to it; host root has no id in that view, so the server's own writes (files, a
 * missing cwd) go through a plain mount of the same upper first, with the owners as given. With
 * files that is known up front; whether the cwd exists only the merged view tells.
 */
export async function prepareRootfs(
  d: RootfsDeps,
  o: {
    projectId: string;
    dir: string;
    meta: InstanceMetadata;
    image: ImageRecord;
    users: IdRange | null;
    teardown: CleanupStack;
  },
): Promise<RunRootfs> {
  const { dir, meta, teardown } = o;
  const rootfs = join(dir, "rootfs");
  const bundle = join(dir, "bundle");
  const capBytes = meta.resources_limits.max_layer_bytes;
  teardown.push("remove run dir", () => rm(dir, { recursive: true, force: true }));
  mkdirSync(bundle, { recursive: true });
  const scratch = await d.scratch.acquire(dir, capBytes);
  const releaseScratch = teardown.push("release scratch", () => scratch.release());
  const base: MountRootfsOptions = {
    lowers: d.layers.paths(o.image.mountChain),
    upper: scratch.upper,
    work: scratch.work,
    target: rootfs,
  };
  const idmapped: MountRootfsOptions = o.users === null ? base : { ...base, idmap: o.users };
  const mount = async (opts: MountRootfsOptions): Promise<CleanupStep> => {
    await mountRootfs(opts);
    return teardown.push("unmount rootfs", () => unmount(rootfs));
  };
  const writeFiles = async () => {
    for (const [path, f] of Object.entries(meta.files)) {
      const file = await d.store.files.findById(o.projectId, f.uuid);
      if (!file || !d.content.localPath) throw notFound(`file ${f.uuid} not found`);
      const src = d.content.localPath(digestFromHex(file.sha256) as Digest);
      await writeFileInto(rootfs, path, src, {
        uid: f.uid,
        gid: f.gid,
        mode: Number.parseInt(f.mode, 8),
      }).catch((err: unknown) => {
        // Out of space here is the run's own cap, not the server's storage.
        if (isStorageFull(err))
          throw payloadTooLarge(`the run's files do not fit in max_layer_bytes (${capBytes})`, {
            cause: err,
          });
        throw err;
      });
    }
  };
  const plainFirst = o.users !== null && Object.keys(meta.files).length > 0;
  let mounted = await mount(plainFirst ? base : idmapped);
  if (o.users !== null && (plainFirst || !isPlainDirInside(rootfs, meta.cwd))) {
    if (!plainFirst) {
      await mounted.run();
      mounted = await mount(base);
    }
    await writeFiles();
    await ensureDir(rootfs, meta.cwd);
    await mounted.run();
    mounted = await mount(idmapped);
  } else {
    await writeFiles();
  }
  return { dir, rootfs, bundle, scratch, releaseScratch, unmount: mounted };
}
