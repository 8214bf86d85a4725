/**
 * Mount and unmount, by syscall through the native addon, or by spawning util-linux's
 * `mount`/`umount` when the addon is not available. Errors are plain Errors with `code` set
 * to the errno name (EBUSY, EINVAL, ENOENT, …) in both backends, as far as the CLI tells.
 */
import path from "node:path";
import {
  MNT_DETACH,
  MS_BIND,
  MS_NODEV,
  MS_NOSUID,
  MS_RDONLY,
  MS_REMOUNT,
  type NativeSys,
  nativeSys,
} from "./native-sys.js";
import { runCommand } from "./run-command.js";

export interface OverlaySpec {
  /** Layer directories, top-most first: absolute, or names relative to `relativeTo`. */
  lowers: string[];
  /** Directory the lower names are relative to (the CLI mounts from there: shorter options). */
  relativeTo?: string;
  /** Both or neither; neither = read-only overlay. */
  upper?: string;
  work?: string;
  /** Extra options, "key" or "key=value". */
  options: string[];
  /**
   * Idmap every layer (native backend only, see Mounter.idmapsLayers): ids 0..size-1 on disk
   * appear as host ids hostId… in the overlay, and the overlay writes them back as they were.
   */
  idmap?: IdRange;
}

/** A contiguous range of host user and group ids (the same numbers for both). */
export interface IdRange {
  hostId: number;
  size: number;
}

export interface Mounter {
  readonly backend: "native" | "cli";
  /** Whether overlay() takes `idmap` (idmapped layer mounts need the native backend). */
  readonly idmapsLayers: boolean;
  /**
   * overlayfs at `target`. The CLI backend is limited by the 4 KiB option string, and shows the
   * strings it was given in the mount's options (pass relative names to hide host paths).
   */
  overlay(target: string, o: OverlaySpec): Promise<void>;
  /** Read-only bind mount of `source` at `target`. */
  bindReadOnly(source: string, target: string): Promise<void>;
  tmpfs(target: string, options: string): Promise<void>;
  /**
   * Mounts a filesystem image through a loop device that detaches itself on umount.
   * `options` are the filesystem's own (comma-separated); it is mounted nosuid,nodev.
   */
  loop(image: string, target: string, fstype: string, options: string): Promise<void>;
  /** `lazy` detaches a busy mount (MNT_DETACH). */
  umount(target: string, o?: { lazy?: boolean }): Promise<void>;
}

function errnoError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

class NativeMounter implements Mounter {
  readonly backend = "native";
  readonly idmapsLayers = true;
  constructor(private readonly sys: NativeSys) {}

  overlay(target: string, o: OverlaySpec): Promise<void> {
    const ro = o.upper === undefined;
    const base = o.relativeTo;
    const lowers = base === undefined ? o.lowers : o.lowers.map((l) => path.resolve(base, l));
    const base2 = base ?? "/";
    const upper = o.upper === undefined ? null : path.resolve(base2, o.upper);
    const work = o.work === undefined ? null : path.resolve(base2, o.work);
    return this.sys.mountOverlay(
      target,
      lowers,
      upper,
      work,
      o.options,
      ro,
      o.idmap?.hostId ?? 0,
      o.idmap?.size ?? 0,
    );
  }

  async bindReadOnly(source: string, target: string): Promise<void> {
    await this.sys.mount(source, target, null, MS_BIND, null);
    try {
      await this.sys.mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY, null);
    } catch (err) {
      await this.sys.umount(target, MNT_DETACH).catch(() => undefined);
      throw err;
    }
  }

  tmpfs(target: string, options: string): Promise<void> {
    return this.sys.mount("contree-scratch", target, "tmpfs", 0, options);
  }

  loop(image: string, target: string, fstype: string, options: string): Promise<void> {
    return this.sys.mountLoop(image, target, fstype, MS_NOSUID | MS_NODEV, options);
  }

  umount(target: string, o: { lazy?: boolean } = {}): Promise<void> {
    return this.sys.umount(target, o.lazy ? MNT_DETACH : 0);
  }
}

async function cli(file: string, args: string[], cwd?: string): Promise<void> {
  const r = await runCommand(file, args, cwd === undefined ? {} : { cwd });
  if (r.code === 0) return;
  const msg = r.stderr.trim();
  // umount(8) says "no mount point specified" for a path that does not exist.
  const code = /not mounted/i.test(msg)
    ? "EINVAL"
    : /busy/i.test(msg)
      ? "EBUSY"
      : /no mount point specified|no such file|not found|does not exist/i.test(msg)
        ? "ENOENT"
        : "EIO";
  throw errnoError(`${file} failed: ${msg}`, code);
}

/** util-linux copies at most a page of options; stay clear of it. */
export const CLI_OPTION_BUDGET = 4000;

class CliMounter implements Mounter {
  readonly backend = "cli";
  readonly idmapsLayers = false;

  async overlay(target: string, o: OverlaySpec): Promise<void> {
    if (o.idmap !== undefined) throw errnoError("idmapped layers need the native addon", "EOPNOTSUPP");
    const parts = [`lowerdir=${o.lowers.join(":")}`];
    if (o.upper !== undefined && o.work !== undefined) parts.push(`upperdir=${o.upper}`, `workdir=${o.work}`);
    else parts.unshift("ro");
    parts.push(...o.options);
    const opts = parts.join(",");
    if (opts.length > CLI_OPTION_BUDGET) throw errnoError("overlay options longer than a page", "E2BIG");
    await cli("mount", ["-t", "overlay", "overlay", "-o", opts, target], o.relativeTo);
  }

  async bindReadOnly(source: string, target: string): Promise<void> {
    await cli("mount", ["--bind", source, target]);
    try {
      await cli("mount", ["-o", "remount,bind,ro", target]);
    } catch (err) {
      await cli("umount", ["-l", target]).catch(() => undefined);
      throw err;
    }
  }

  tmpfs(target: string, options: string): Promise<void> {
    return cli("mount", ["-t", "tmpfs", "-o", options, "contree-scratch", target]);
  }

  loop(image: string, target: string, fstype: string, options: string): Promise<void> {
    // mount(8) sets the loop device up with autoclear, as the native backend does.
    return cli("mount", ["-t", fstype, "-o", `loop,nosuid,nodev,${options}`, image, target]);
  }

  umount(target: string, o: { lazy?: boolean } = {}): Promise<void> {
    return cli("umount", o.lazy ? ["-l", target] : [target]);
  }
}

/** The native mounter when the addon is loaded, else the CLI one. `backend` forces one (tests). */
export function mounter(backend?: "native" | "cli"): Mounter {
  const sys = backend === "cli" ? null : nativeSys();
  if (backend === "native" && sys === null) throw new Error("native addon not available");
  return sys === null ? new CliMounter() : new NativeMounter(sys);
}
