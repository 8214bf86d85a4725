/**
 * Mount points under /dev for runsc sandboxes. runsc's gofer creates a bind mount's mount point
 * in the host rootfs, which is the run's overlay: a bind at `/dev/.contree-init` would put that
 * file into every snapshot. A small host tmpfs over `<rootfs>/dev` (hidden inside the sandbox by
 * gVisor's own /dev) takes the mount points instead, and holds the init's report directory:
 * 64 KiB and 64 inodes, so a sandbox that fills it fills only its own.
 */
import { lstatSync, mkdirSync } from "node:fs";
import { chmod, writeFile } from "node:fs/promises";
import path from "node:path";
import { mounter } from "../../sys/mount.js";
import { unmount } from "../../sys/overlay-mount.js";

export interface DevPoints {
  /** Host directory of the report files (bound at REPORT_DIR_IN_SANDBOX). */
  reportDir: string;
  undo(): Promise<void>;
}

/**
 * Mounts the tmpfs with an empty file per name in `files` (mount points of read-only binds) and
 * the report directory `reportDir`. Returns null when `<rootfs>/dev` is not a plain directory
 * (a symlink must never be followed on the host): that run goes without them.
 */
export async function mountDevPoints(
  rootfs: string,
  files: string[],
  reportDir: string,
): Promise<DevPoints | null> {
  const dev = path.join(rootfs, "dev");
  try {
    if (!lstatSync(dev).isDirectory()) return null;
  } catch {
    return null;
  }
  // Nothing runs in this rootfs yet, so nothing can swap /dev for a symlink after the check.
  await mounter().tmpfs(dev, "size=64k,nr_inodes=64,mode=755");
  const undo = () => unmount(dev);
  try {
    for (const f of files) await writeFile(path.join(dev, f), "", { mode: 0o755 });
    const dir = path.join(dev, reportDir);
    mkdirSync(dir, { mode: 0o1777 });
    // The sandbox's user (any uid) creates its report there.
    await chmod(dir, 0o1777);
    return { reportDir: dir, undo };
  } catch (err) {
    await undo().catch(() => undefined);
    throw err;
  }
}
