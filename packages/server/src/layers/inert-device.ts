/**
 * Device nodes never exist live in the layer store. A char or block device that a layer names,
 * or that a sandbox made and a snapshot would keep, is stored as an inert stand-in: an empty
 * regular file with mode 000 and an xattr recording what it was ("c 1 11 0666"). Mounted, it is
 * an unreadable empty file; the merged view (inspect: list, text, archive) reports it as the
 * device it names. Only 0/0 character devices stay real: they are overlayfs whiteouts.
 *
 * The xattr lives in the trusted namespace: a sandbox without CAP_SYS_ADMIN in the host's user
 * namespace cannot forge one, and layer tars cannot carry one in (the applier drops it).
 */
import fs from "node:fs";
import { readdir } from "node:fs/promises";
import { setAttributeSync } from "@napi-rs/xattr";
import { major, minor } from "./device.js";
import { getXattrSync } from "./overlay-lookup.js";

export const DEVICE_XATTR = "trusted.contree.device";

interface DeviceRecord {
  kind: "char" | "block";
  major: number;
  minor: number;
  /** Permission bits the node had (including setuid/setgid/sticky). */
  mode: number;
}

function encodeDevice(d: DeviceRecord): string {
  return `${d.kind === "char" ? "c" : "b"} ${d.major} ${d.minor} ${(d.mode & 0o7777).toString(8)}`;
}

const RECORD = /^([cb]) (\d{1,10}) (\d{1,10}) ([0-7]{1,4})$/;

function decodeDevice(v: Buffer | null): DeviceRecord | null {
  if (v === null || v.length > 64) return null;
  const m = RECORD.exec(v.toString("latin1"));
  if (m === null) return null;
  return {
    kind: m[1] === "c" ? "char" : "block",
    major: Number(m[2]),
    minor: Number(m[3]),
    mode: parseInt(m[4]!, 8),
  };
}

/** Linux dev_t from major/minor (glibc's gnu_dev_makedev), as fs.Stats.rdev carries it. */
export function makedev(maj: number, min: number): number {
  const low = ((min & 0xff) | ((maj & 0xfff) << 8) | ((min & 0xfff00) << 12)) >>> 0;
  const high = (maj & 0xfffff000) >>> 0;
  return high * 2 ** 32 + low;
}

/** The shape every stand-in has; only such files are worth an xattr read. */
function mayBeInertDevice(st: fs.Stats): boolean {
  return st.isFile() && st.size === 0 && (st.mode & 0o7777) === 0;
}

/** The device a stand-in at `host` records, or null for any other file. */
export function inertDeviceAt(host: string, st: fs.Stats): DeviceRecord | null {
  return mayBeInertDevice(st) ? decodeDevice(getXattrSync(host, DEVICE_XATTR)) : null;
}

/** Create the stand-in at a free name (never following a symlink there); owner and times are the caller's. */
export function writeInertDevice(host: string, d: DeviceRecord): void {
  const c = fs.constants;
  const fd = fs.openSync(host, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0);
  try {
    fs.fchmodSync(fd, 0);
  } finally {
    fs.closeSync(fd);
  }
  setAttributeSync(host, DEVICE_XATTR, encodeDevice(d));
}

/** A live node (not a whiteout) that must not reach the layer store. */
function isLiveDevice(st: fs.Stats): boolean {
  return st.isBlockDevice() || (st.isCharacterDevice() && st.rdev !== 0);
}

/** Replace the live node at `host` by its stand-in, keeping owner and times. */
function neutralizeNode(host: string, st: fs.Stats): void {
  const d: DeviceRecord = {
    kind: st.isBlockDevice() ? "block" : "char",
    major: major(st.rdev),
    minor: minor(st.rdev),
    mode: st.mode & 0o7777,
  };
  fs.unlinkSync(host);
  writeInertDevice(host, d);
  fs.lchownSync(host, st.uid, st.gid);
  fs.lutimesSync(host, st.atime, st.mtime);
}

/**
 * Walk a directory that no sandbox can change any more (a stopped run's upper, a staged layer)
 * and replace every live device node by its stand-in. Returns how many were replaced. Symlinks
 * are never followed; readdir's entry types spare an lstat of every other file.
 */
export async function neutralizeDevices(root: string): Promise<number> {
  let replaced = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const p = `${dir}/${d.name}`;
      if (d.isDirectory()) stack.push(p);
      else if (d.isCharacterDevice() || d.isBlockDevice()) {
        const st = fs.lstatSync(p);
        if (isLiveDevice(st)) {
          neutralizeNode(p, st);
          replaced++;
        }
      }
    }
  }
  return replaced;
}
