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
 * Its mount point lives on the host tmpfs of dev-points.ts, like the sandbox init's: never in a
 * snapshot. The init runs under it (statx-fix → init → command).
 */
import { lstatSync } from "node:fs";
import { STATX_FIX } from "../../sys/native-sys.js";
import type { OciConfig } from "../oci/bundle.js";

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
