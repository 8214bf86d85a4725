/**
 * The statx workaround for runsc 20221219 (Debian bookworm's). Its kernel answers EINVAL to
 * statx(2) and newfstatat(2) calls that carry AT_NO_AUTOMOUNT, which glibc and coreutils pass:
 * `ls`, `stat` and `cp` fail in every Debian-based image. Answering ENOSYS (a seccomp filter,
 * the usual trick) does not help: glibc's statx emulation then calls newfstatat with the same
 * flag and gets the same EINVAL.
 *
 * So the sandbox's entry point becomes native/statx-fix.c, bind-mounted read-only at a path
 * under /dev (gVisor's own tmpfs there, never part of a snapshot): it runs the command as its
 * traced child and clears the flag in the few calls that carry it (a seccomp filter traps only
 * those). Exit codes, argv[0], stdin, env and cwd stay as they were; the command runs as pid 2.
 *
 * runsc's gofer creates a bind mount's mount point in the host rootfs, which is the run's
 * overlay: that would put `/dev/.contree-statx-fix` into every snapshot. A small host tmpfs
 * over `<rootfs>/dev` (hidden inside the sandbox by gVisor's own /dev) takes it instead.
 */
import { lstatSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { mounter } from "../../sys/mount.js";
import { STATX_FIX } from "../../sys/native-sys.js";
import type { OciConfig } from "../oci/bundle.js";
import { unmount } from "../rootfs.js";

export const STATX_FIX_IN_SANDBOX = "/dev/.contree-statx-fix";

/** The host binary, or null when it is not built. */
export function statxFixBinary(): string | null {
  try {
    return lstatSync(STATX_FIX).isFile() ? STATX_FIX : null;
  } catch {
    return null;
  }
}

/** True when every failed probe check is one the workaround answers. */
export function statxFixCovers(failedChecks: readonly string[]): boolean {
  return failedChecks.length > 0 && failedChecks.every((c) => /^(statx|newfstatat)(-|$)/.test(c));
}

/**
 * Mounts the host tmpfs that holds the mount point. Returns its undo, or null when `<rootfs>/dev`
 * is not a plain directory (a symlink must never be followed on the host): that run goes
 * without the workaround.
 */
export async function mountStatxFixPoint(rootfs: string): Promise<(() => Promise<void>) | null> {
  const dev = path.join(rootfs, "dev");
  try {
    if (!lstatSync(dev).isDirectory()) return null;
  } catch {
    return null;
  }
  // Nothing runs in this rootfs yet, so nothing can swap /dev for a symlink after the check.
  await mounter().tmpfs(dev, "size=64k,mode=755");
  try {
    await writeFile(path.join(dev, path.basename(STATX_FIX_IN_SANDBOX)), "", { mode: 0o755 });
  } catch (err) {
    await unmount(dev).catch(() => undefined);
    throw err;
  }
  return () => unmount(dev);
}

/** The command as the workaround's argument list. */
export function statxFixArgs(args: string[]): string[] {
  return [STATX_FIX_IN_SANDBOX, ...args];
}

/** Adds the read-only entry point and makes it the process's program. */
export function applyStatxFix(config: OciConfig, binary: string): void {
  config.mounts.push({
    destination: STATX_FIX_IN_SANDBOX,
    type: "bind",
    source: binary,
    options: ["rbind", "ro", "nosuid", "nodev"],
  });
  config.process.args = statxFixArgs(config.process.args);
}
