import type { ContentStore } from "../../content/content-store.js";
import { type Digest, digestFromHex } from "../../core/digest.js";
import { internal, isStorageFull, notFound, payloadTooLarge } from "../../core/errors.js";
import type { MetadataStore } from "../../metadata/metadata-store.js";
import { type MountRootfsOptions, mountRootfs, unmount } from "../../sys/overlay-mount.js";
import type { PrepareOptions } from "../snapshotter.js";
import { ensureDir, isPlainDirInside, writeFileInto } from "./rootfs-writer.js";

interface RootfsDeps {
  store: MetadataStore;
  content: ContentStore;
}

/** What a prepare has mounted so far: the one mount to undo (null: none). */
export interface MountState {
  mounted: string | null;
}

async function mount(opts: MountRootfsOptions, state: MountState): Promise<void> {
  await mountRootfs(opts).catch((err: unknown) => {
    throw internal("overlay mount failed", { cause: err });
  });
  state.mounted = opts.target;
}

export async function unmountNow(state: MountState): Promise<void> {
  if (state.mounted === null) return;
  await unmount(state.mounted);
  state.mounted = null;
}

/**
 * The overlay of `lowers` over the scratch's upper at `rootfs`, with the uploaded files written
 * in and the cwd made. With a user range the layers are idmapped to it; host root has no id in
 * that view, so the server's own writes (files, a missing cwd) go through a plain mount of the
 * same upper first, with the owners as given. With files that is known up front; whether the cwd
 * exists only the merged view tells. `state` says what is mounted whenever this throws.
 */
export async function mountRunRootfs(
  d: RootfsDeps,
  o: {
    lowers: string[];
    upper: string;
    work: string;
    rootfs: string;
    opts: PrepareOptions;
    state: MountState;
  },
): Promise<void> {
  const { rootfs, opts, state } = o;
  const base: MountRootfsOptions = { lowers: o.lowers, upper: o.upper, work: o.work, target: rootfs };
  const idmapped: MountRootfsOptions = opts.users === null ? base : { ...base, idmap: opts.users };
  const writeFiles = async () => {
    for (const [path, f] of Object.entries(opts.files)) {
      const file = await d.store.files.findById(opts.projectId, f.uuid);
      if (!file || !d.content.localPath) throw notFound(`file ${f.uuid} not found`);
      const src = d.content.localPath(digestFromHex(file.sha256) as Digest);
      await writeFileInto(rootfs, path, src, {
        uid: f.uid,
        gid: f.gid,
        mode: Number.parseInt(f.mode, 8),
      }).catch((err: unknown) => {
        // Out of space here is the run's own cap, not the server's storage.
        if (isStorageFull(err))
          throw payloadTooLarge(`the run's files do not fit in max_layer_bytes (${opts.capBytes})`, {
            cause: err,
          });
        throw err;
      });
    }
  };
  const plainFirst = opts.users !== null && Object.keys(opts.files).length > 0;
  await mount(plainFirst ? base : idmapped, state);
  if (opts.users !== null && (plainFirst || !isPlainDirInside(rootfs, opts.cwd))) {
    if (!plainFirst) {
      await unmountNow(state);
      await mount(base, state);
    }
    await writeFiles();
    await ensureDir(rootfs, opts.cwd);
    await unmountNow(state);
    await mount(idmapped, state);
  } else {
    await writeFiles();
    // Sync lstats on cached dentries when the cwd exists (it nearly always does): microseconds.
    await ensureDir(rootfs, opts.cwd);
  }
}
