/**
 * The optional native addon (native/contree_sys.c, built by `npm run build`). It replaces
 * process spawns on the run path: posix_spawn instead of libuv's fork (whose cost grows with
 * our RSS) and mount syscalls instead of spawning `mount`/`umount`. Without it everything
 * still works through the spawn fallbacks, only slower; `doctor` and the start-up log say so.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface NativeSpawnResult {
  pid: number;
  /** Parent ends, close-on-exec; -1 when stdin was not piped. */
  stdin: number;
  stdout: number;
  stderr: number;
  /** Read end of the report pipe (the child's fd 3); -1 when none was asked for. */
  report: number;
  /** Field 22 of /proc/PID/stat, read before the child could be reaped; null if unreadable. */
  startTime: string | null;
}

export interface NativeSys {
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): Promise<void>;
  umount(target: string, flags: number): Promise<void>;
  /**
   * fsopen("overlay") with one `lowerdir+` per layer: no option-string length limit. Every layer
   * (and the upper/work pair, which must be siblings) is passed as an fd to a detached copy of its
   * mount, so the overlay's options name no host path. With `idmapSize` > 0 those copies are
   * idmapped (ids 0..size-1 on disk ↔ host ids idmapHost…), and the mount is created as the
   * range's root.
   */
  mountOverlay(
    target: string,
    lowers: string[],
    upper: string | null,
    work: string | null,
    options: string[],
    readOnly: boolean,
    idmapHost: number,
    idmapSize: number,
  ): Promise<void>;
  /** An exclusive flock on `path` (created if missing) as an fd, or -1 when someone holds it. */
  tryLock(path: string): number;
  /**
   * Attaches a filesystem image to a free loop device (autoclear: it detaches on umount) and
   * mounts it at `target`.
   */
  mountLoop(image: string, target: string, fstype: string, flags: number, data: string | null): Promise<void>;
  /** Project id on `dir`, with PROJINHERIT (what is created below inherits it). */
  setProjectId(dir: string, projectId: number): void;
  /** The project's block hard limit on the filesystem holding `path` (0 = none). */
  setProjectLimit(path: string, projectId: number, limitBytes: number): void;
  /** A project's usage and block hard limit on the filesystem holding `path`. */
  projectQuota(
    path: string,
    projectId: number,
  ): { usedBytes: number; usedInodes: number; limitBytes: number };
  /**
   * A non-blocking TCP socket made inside the network namespace `nsFd` refers to (by a thread
   * that enters it and ends), connecting to 127.0.0.1:port there: the caller owns the fd.
   */
  netnsConnect(nsFd: number, port: number): number;
  /** A close-on-exec, sealed memfd copy of a file (run it as /proc/self/fd/N). */
  sealedCopy(path: string): number;
  spawn(
    file: string,
    argv: string[],
    envp: string[],
    cwd: string | null,
    pipeStdin: boolean,
    setsid: boolean,
    onExit: (code: number | null, signal: number | null) => void,
    /** Kept open, at the same numbers, in this child only. */
    inheritFds?: number[],
    /** One more pipe, its write end at the child's fd 3. */
    reportPipe?: boolean,
  ): NativeSpawnResult;
}

/** mount(2) flags we use. */
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
/** umount2(2) flags. */
export const MNT_DETACH = 2;

const BUILD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "native", "build");
const ADDON = path.join(BUILD_DIR, "contree_sys.node");
/** native/cgexec.c: joins cgroups, then executes the real program. */
export const CGEXEC = path.join(BUILD_DIR, "contree-cgexec");
/** native/probe.c: the userland system-call probe a driver's self-test runs in a sandbox. */
export const PROBE = path.join(BUILD_DIR, "contree-probe");
/** native/statx-fix.c: gVisor entry point that strips AT_NO_AUTOMOUNT from statx/newfstatat. */
export const STATX_FIX = path.join(BUILD_DIR, "contree-statx-fix");
/** native/init.c: the entry point of every sandboxed process (exec, wait4, rusage report). */
export const INIT = path.join(BUILD_DIR, "contree-init");
/** native/watchdog.c: kills a sandbox at its deadline when the server is gone. */
export const WATCHDOG = path.join(BUILD_DIR, "contree-watchdog");

let loaded: { sys: NativeSys | null; reason: string | null } | undefined;

function load(): { sys: NativeSys | null; reason: string | null } {
  if (process.env["CONTREE_NO_NATIVE"] === "1")
    return { sys: null, reason: "disabled by CONTREE_NO_NATIVE=1" };
  if (process.platform !== "linux") return { sys: null, reason: "not Linux" };
  if (!existsSync(ADDON)) return { sys: null, reason: "not built (run `npm run build`)" };
  try {
    return { sys: createRequire(import.meta.url)(ADDON) as NativeSys, reason: null };
  } catch (err) {
    return { sys: null, reason: `failed to load: ${(err as Error).message.split("\n")[0]}` };
  }
}

/** The addon, or null when it is missing or disabled. */
export function nativeSys(): NativeSys | null {
  loaded ??= load();
  return loaded.sys;
}

/** Why the addon is not in use (null when it is). */
export function nativeSysUnavailableReason(): string | null {
  loaded ??= load();
  return loaded.reason;
}
