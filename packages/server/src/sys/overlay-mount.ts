/**
 * Overlay root filesystems: lowers = a layer chain, a fresh upper/work pair, mounted at
 * `target`. The snapshotter (snapshots/) mounts every run's rootfs and every flatten's view with
 * it; the runtime's self-test mounts its probe rootfs the same way. Errors are plain Errors with
 * `code` (EINVAL for arguments this refuses), like the rest of sys/.
 *
 * A sandbox reads its root's mount options in /proc/mounts, so they never name a host path:
 *  - with the native addon the overlay is built with fsopen/fsconfig, each layer (and the
 *    upper/work pair) handed over as an fd to a detached copy of its mount, one `lowerdir+` per
 *    layer: no option-string limit, and the options read `lowerdir+=/,upperdir=/upper,…`. The
 *    same copies can be idmapped (`idmap`), for sandboxes in a user namespace;
 *  - the CLI fallback goes through mount(2)'s legacy option string (4096 bytes at most), which
 *    the kernel shows as given: it mounts from a throw-away directory of short symlinks (`0`, `1`,
 *    …, `u`, `w`) with that directory as cwd. The kernel resolves them at mount time and no
 *    longer needs them afterwards.
 */
import { mkdirSync } from "node:fs";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import path from "node:path";
import { CLI_OPTION_BUDGET, type IdRange, type Mounter, mounter } from "./mount.js";

export interface MountRootfsOptions {
  /** Absolute layer directories, top-most first. */
  lowers: string[];
  upper?: string;
  work?: string;
  target: string;
  /** No upper: a read-only view of the chain (upper/work are ignored). */
  readOnly?: boolean;
  /**
   * Idmap the layers to this host id range (a sandbox in a user namespace with the same
   * mapping sees in-image owners; its writes land in the upper with in-image owners). Needs a
   * mounter that idmapsLayers. Host root has no mapping in such a view: the server writes
   * through a mount without `idmap`.
   */
  idmap?: IdRange;
}

/** Kernel's overlay limit; the caller keeps chains far shorter by compaction. */
const MAX_LOWERS = 500;
/**
 * Keep layers self-contained in "upper format": no metacopy/redirect/index state tying them to a
 * mount. `nodev`: a device node in the rootfs never opens a host device, whatever a layer or an
 * older data dir holds (the runtime's own /dev is a separate mount). `nosuid` costs nothing: the
 * sandbox runs with no_new_privs, under which setuid bits and file capabilities are ignored anyway.
 */
const FIXED_OPTS = ["index=off", "redirect_dir=off", "metacopy=off", "nodev", "nosuid"];

function errno(message: string, code: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? {} : { cause }), { code });
}

function invalidArgument(message: string): Error {
  return errno(message, "EINVAL");
}

export function checkPath(p: string, what: string): void {
  if (!path.isAbsolute(p)) throw invalidArgument(`${what} must be absolute`);
  // Separators of the option string; overlay's escaping of these is not worth trusting.
  if (/[,:\\\n\0=]/.test(p))
    throw invalidArgument(`${what} contains characters overlayfs options cannot carry`);
}

/** The legacy option string the CLI fallback passes (exported for its length tests). */
function buildOverlayOptions(o: MountRootfsOptions, lowerNames: string[]): string {
  const lower = `lowerdir=${lowerNames.join(":")}`;
  if (o.readOnly) return `ro,${lower},${FIXED_OPTS.join(",")}`;
  return `${lower},upperdir=${o.upper},workdir=${o.work},${FIXED_OPTS.join(",")}`;
}

/** The mount's own error (its errno `code` kept for callers that tell refusals apart). */
function mountFailed(err: unknown): Error {
  const code = (err as { code?: unknown }).code;
  return errno("overlay mount failed", typeof code === "string" ? code : "EIO", err);
}

export async function mountRootfs(o: MountRootfsOptions, m: Mounter = mounter()): Promise<void> {
  if (o.lowers.length === 0) throw invalidArgument("at least one lower layer is required");
  if (o.lowers.length > MAX_LOWERS) throw invalidArgument("layer chain too deep");
  for (const l of o.lowers) checkPath(l, "layer path");
  checkPath(o.target, "mount target");
  if (!o.readOnly) {
    if (o.upper === undefined || o.work === undefined) throw invalidArgument("upper and work are required");
    checkPath(o.upper, "upper path");
    checkPath(o.work, "work path");
    // On the path of every run: sync mkdirs cost microseconds, thread-pool round trips far more.
    mkdirSync(o.upper, { recursive: true });
    mkdirSync(o.work, { recursive: true });
  }
  mkdirSync(o.target, { recursive: true });

  const only = o.lowers[0];
  if (o.readOnly && o.lowers.length === 1 && only !== undefined) {
    // overlayfs refuses a single lower without an upper; a read-only bind is the same view.
    await m.bindReadOnly(only, o.target).catch((err: unknown) => {
      throw mountFailed(err);
    });
    return;
  }
  if (o.idmap !== undefined && !m.idmapsLayers)
    throw errno("idmapped layers need the native addon", "EOPNOTSUPP");
  if (m.backend === "native") {
    const rw = o.readOnly ? {} : { upper: o.upper as string, work: o.work as string };
    if (!o.readOnly && path.dirname(rw.upper as string) !== path.dirname(rw.work as string))
      throw invalidArgument("upper and work must be in one directory");
    const idmap = o.idmap === undefined ? {} : { idmap: o.idmap };
    await m
      .overlay(o.target, { lowers: o.lowers, ...rw, ...idmap, options: FIXED_OPTS })
      .catch((err: unknown) => {
        throw mountFailed(err);
      });
    return;
  }
  // CLI: every path through a short alias, so the options show none.
  const aliasDir = await mkdtemp(path.join(path.dirname(o.target), ".lowers-"));
  try {
    const names = o.lowers.map((_, i) => String(i));
    const links = o.lowers.map((l, i) => symlink(l, path.join(aliasDir, String(i))));
    const rw: { upper?: string; work?: string } = {};
    if (!o.readOnly) {
      links.push(symlink(o.upper as string, path.join(aliasDir, "u")));
      links.push(symlink(o.work as string, path.join(aliasDir, "w")));
      rw.upper = "u";
      rw.work = "w";
    }
    await Promise.all(links);
    if (buildOverlayOptions({ ...o, ...rw }, names).length > CLI_OPTION_BUDGET)
      throw invalidArgument("layer chain too deep");
    await m
      .overlay(o.target, { lowers: names, relativeTo: aliasDir, ...rw, options: FIXED_OPTS })
      .catch((err: unknown) => {
        throw mountFailed(err);
      });
  } finally {
    await rm(aliasDir, { recursive: true, force: true });
  }
}

/** Unmounts `target`; a mount still busy after a few tries is detached lazily. Missing mounts are fine. */
export async function unmount(target: string, m: Mounter = mounter()): Promise<void> {
  for (let i = 0; i < 5; i++) {
    try {
      await m.umount(target);
      return;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // Not a mount point (EINVAL) or no such path: nothing to undo.
      if (code === "EINVAL" || code === "ENOENT") return;
      if (code !== "EBUSY") throw err;
    }
    await new Promise((res) => setTimeout(res, 20 * (i + 1)));
  }
  await m.umount(target, { lazy: true });
}
