/**
 * Read-only view of an image's filesystem straight from its layer chain (overlay upper format,
 * top-most first), without mounting. Whiteouts and opaque directories are honoured; every path is
 * normalised and confined to the image root ("../" stops at "/", symlinks are followed only
 * inside the image, at most MAX_SYMLINK_HOPS of them). It backs inspect (list, download, archive,
 * grep). Errors: not_found for a missing path, unprocessable for "is a directory" / "not a
 * directory" / "not a regular file"; messages never contain host paths.
 */
import fs from "node:fs";
import type { Readable } from "node:stream";
import { getAttribute, listAttributes } from "@napi-rs/xattr";
import { internal, invalidArgument, isAppError, notFound, unprocessable } from "../core/errors.js";
import { DEVICE_XATTR, inertDeviceAt, makedev } from "./inert-device.js";
import {
  type DirCache,
  hostPath,
  isWhiteout,
  lookupChild,
  type MergedNode,
  OPAQUE_XATTR,
  resolvePath,
  runAsync,
  splitPath,
} from "./overlay-lookup.js";

export type FileType = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

export interface MergedStat {
  /** Normalised absolute path inside the image ("/" for the root), parents' symlinks resolved. */
  path: string;
  type: FileType;
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes for regular files and symlinks, 0 otherwise. */
  size: number;
  mtimeMs: number;
  nlink: number;
  /** Device number of char/block devices. */
  rdev: number;
  /** Identifies the inode across the view: equal for hardlinks of one file. */
  inode: string;
  /** Index of the layer the entry comes from (top-most directory layer for merged dirs). */
  layer: number;
}

/** Our own bookkeeping, never shown as an entry's attributes: overlay's and the device record. */
const HIDDEN_XATTR_PREFIXES = ["trusted.overlay.", "user.overlay.", DEVICE_XATTR];
const CACHE_LIMIT = 10_000;

interface ListBudget {
  maxEntries?: number;
  deadline?: number;
}

export class MergedView {
  private readonly roots: readonly string[];
  private readonly cache = new BoundedCache(CACHE_LIMIT);

  /** @param layers layer directories, top-most first (at least one). */
  constructor(layers: readonly string[]) {
    if (layers.length === 0) throw internal("merged view needs at least one layer");
    this.roots = [...layers];
  }

  /** Lexical normalisation: absolute, no "." or empty parts, ".." clamped at the root. */
  static normalize(path: string): string {
    const out: string[] = [];
    for (const c of splitPath(path)) {
      if (c === "..") out.pop();
      else out.push(c);
    }
    return `/${out.join("/")}`;
  }

  async lstat(path: string): Promise<MergedStat> {
    const r = await this.resolve(path, false);
    return this.toStat(r.parts, r.node);
  }

  async stat(path: string): Promise<MergedStat> {
    const r = await this.resolve(path, true);
    return this.toStat(r.parts, r.node);
  }

  /** Resolve every symlink; the result is a normalised path that exists. */
  async realpath(path: string): Promise<string> {
    const r = await this.resolve(path, true);
    return `/${r.parts.join("/")}`;
  }

  async readlink(path: string): Promise<string> {
    const r = await this.resolve(path, false);
    const node = r.node;
    if (node.kind !== "leaf" || !node.st.isSymbolicLink()) throw unprocessable("not a symbolic link");
    return hostCall(() => fs.promises.readlink(hostPath(this.roots[node.layer]!, r.parts)));
  }

  /** Names in a directory (symlinks followed), merged across layers, sorted by code unit. */
  async readdir(path: string): Promise<string[]> {
    const r = await this.resolve(path, true);
    if (r.node.kind !== "dir") throw unprocessable("not a directory");
    return this.names(r.parts, r.node.layers);
  }

  /**
   * readdir plus an lstat of every entry. A `budget` stops early (at `maxEntries` entries, or
   * once the clock passes `deadline`, in ms since the epoch) and returns what was listed so far.
   */
  async list(path: string, budget?: ListBudget): Promise<MergedStat[]> {
    const r = await this.resolve(path, true);
    if (r.node.kind !== "dir") throw unprocessable("not a directory");
    const out: MergedStat[] = [];
    const max = budget?.maxEntries ?? Number.POSITIVE_INFINITY;
    const deadline = budget?.deadline ?? Number.POSITIVE_INFINITY;
    for (const name of await this.names(r.parts, r.node.layers)) {
      if (out.length >= max || Date.now() >= deadline) break;
      const node = await runAsync(lookupChild(this.roots, r.parts, r.node.layers, name));
      if (node.kind !== "missing") out.push(this.toStat([...r.parts, name], node));
    }
    return out;
  }

  /** Open a regular file (symlinks followed) for streaming; `end` is inclusive, like fs streams. */
  async openRead(
    path: string,
    range: { start?: number; end?: number } = {},
  ): Promise<{ stream: Readable; size: number }> {
    const r = await this.resolve(path, true);
    if (r.node.kind === "dir") throw unprocessable("is a directory");
    if (r.node.kind !== "leaf" || !r.node.st.isFile()) throw unprocessable("not a regular file");
    const host = hostPath(this.roots[r.node.layer]!, r.parts);
    if (inertDeviceAt(host, r.node.st) !== null) throw unprocessable("not a regular file");
    const fh = await hostCall(() => fs.promises.open(host, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW));
    try {
      const st = await fh.stat();
      const stream = fh.createReadStream({ start: range.start, end: range.end, highWaterMark: 1 << 16 });
      return { stream, size: st.size };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Extended attributes of an entry (not followed), without overlayfs' own. */
  async xattrs(path: string): Promise<Map<string, Buffer>> {
    const r = await this.resolve(path, false);
    return this.xattrsOf(r.parts, r.node);
  }

  /**
   * Depth-first, pre-order walk from `path` (not followed if it is a symlink), children sorted;
   * symlinks are reported, never entered. Used to build archives.
   */
  async *walk(path: string): AsyncGenerator<MergedStat & { xattrs(): Promise<Map<string, Buffer>> }> {
    const r = await this.resolve(path, false);
    yield* this.walkNode(r.parts, r.node);
  }

  /**
   * What the top `top` layers of this view hold, raw (before merging): every entry of those
   * layers' trees, pre-order, with `cover` true where the entry hides the lower layers' subtree
   * (a whiteout, an opaque directory, or a non-directory). Only these paths can differ between
   * this view and the view of its chain without those layers (diff of an ancestor). Paths are
   * the layers' own, never followed. `stop()` is polled between directories.
   */
  async *layerEntries(top: number, stop: () => boolean): AsyncGenerator<{ path: string; cover: boolean }> {
    const n = Math.min(top, this.roots.length);
    const pending: string[][] = [[]];
    while (pending.length > 0 && !stop()) {
      const parts = pending.pop()!;
      const seen = new Map<string, boolean>();
      const dirs = new Set<string>();
      for (let i = 0; i < n; i++) {
        const dir = hostPath(this.roots[i]!, parts);
        const st = await fs.promises.lstat(dir).catch(() => null);
        if (!st?.isDirectory()) continue;
        for (const d of await hostCall(() => fs.promises.readdir(dir, { withFileTypes: true }))) {
          let cover = !d.isDirectory();
          if (d.isDirectory()) {
            dirs.add(d.name);
            const opaque = await getAttribute(`${dir}/${d.name}`, OPAQUE_XATTR).catch(() => null);
            cover = opaque !== null && opaque.length === 1 && opaque[0] === 0x79;
          }
          seen.set(d.name, (seen.get(d.name) ?? false) || cover);
        }
      }
      for (const [name, cover] of seen) yield { path: `/${[...parts, name].join("/")}`, cover };
      for (const name of [...dirs].sort().reverse()) if (!seen.get(name)) pending.push([...parts, name]);
    }
  }

  private async *walkNode(
    parts: string[],
    node: MergedNode,
  ): AsyncGenerator<MergedStat & { xattrs(): Promise<Map<string, Buffer>> }> {
    const st = this.toStat(parts, node);
    yield { ...st, xattrs: () => this.xattrsOf(parts, node) };
    if (node.kind !== "dir") return;
    for (const name of await this.names(parts, node.layers)) {
      const childParts = [...parts, name];
      const child = await runAsync(lookupChild(this.roots, parts, node.layers, name));
      if (child.kind !== "missing") yield* this.walkNode(childParts, child);
    }
  }

  private async resolve(path: string, follow: boolean): Promise<{ parts: string[]; node: MergedNode }> {
    if (path.includes("\u0000")) throw invalidArgument("path contains a NUL character");
    const r = await runAsync(resolvePath(this.roots, path, follow, this.cache)).catch(mapHostError);
    if (r.node.kind === "missing") throw notFound("no such file or directory");
    return { parts: r.name === null ? r.parent.parts : [...r.parent.parts, r.name], node: r.node };
  }

  private async names(parts: string[], layers: readonly number[]): Promise<string[]> {
    const decided = new Map<string, boolean>();
    for (const i of layers) {
      const dir = hostPath(this.roots[i]!, parts);
      const ents = await hostCall(() => fs.promises.readdir(dir, { withFileTypes: true }));
      for (const d of ents) {
        if (decided.has(d.name)) continue;
        let visible = true;
        if (d.isCharacterDevice()) {
          const st = await hostCall(() => fs.promises.lstat(`${dir}/${d.name}`));
          visible = !isWhiteout(st);
        }
        decided.set(d.name, visible);
      }
    }
    return [...decided]
      .filter(([, v]) => v)
      .map(([n]) => n)
      .sort();
  }

  private async xattrsOf(parts: string[], node: MergedNode): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    if (node.kind === "missing") return out;
    const layer = node.kind === "dir" ? node.layers[0]! : node.layer;
    const host = hostPath(this.roots[layer]!, parts);
    for (const k of await hostCall(() => listAttributes(host))) {
      if (HIDDEN_XATTR_PREFIXES.some((p) => k.startsWith(p))) continue;
      const v = await hostCall(() => getAttribute(host, k));
      if (v !== null) out.set(k, v);
    }
    return out;
  }

  private toStat(parts: string[], node: MergedNode): MergedStat {
    if (node.kind === "missing") throw notFound("no such file or directory");
    const st = node.st;
    const layer = node.kind === "dir" ? node.layers[0]! : node.layer;
    const dev = node.kind === "leaf" ? inertDeviceAt(hostPath(this.roots[layer]!, parts), st) : null;
    if (dev !== null) {
      return {
        path: `/${parts.join("/")}`,
        type: dev.kind,
        mode: dev.mode,
        uid: st.uid,
        gid: st.gid,
        size: 0,
        mtimeMs: st.mtimeMs,
        nlink: st.nlink,
        rdev: makedev(dev.major, dev.minor),
        inode: `${st.dev}:${st.ino}`,
        layer,
      };
    }
    return {
      path: `/${parts.join("/")}`,
      type: fileType(st),
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.isFile() || st.isSymbolicLink() ? st.size : 0,
      mtimeMs: st.mtimeMs,
      nlink: st.nlink,
      rdev: st.rdev,
      inode: `${st.dev}:${st.ino}`,
      layer,
    };
  }
}

function fileType(st: fs.Stats): FileType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

class BoundedCache implements DirCache {
  private readonly map = new Map<string, MergedNode>();
  constructor(private readonly limit: number) {}
  get(key: string): MergedNode | undefined {
    return this.map.get(key);
  }
  set(key: string, node: MergedNode): void {
    if (this.map.size >= this.limit) this.map.clear();
    this.map.set(key, node);
  }
}

function mapHostError(err: unknown): never {
  if (isAppError(err)) throw err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "ENOENT") throw notFound("no such file or directory");
  if (code === "ENOTDIR") throw unprocessable("not a directory");
  // Deeper than the host can name (PATH_MAX counts the layer directory too).
  if (code === "ENAMETOOLONG") throw unprocessable("path is too long");
  throw internal("cannot read the image filesystem", { cause: err });
}

async function hostCall<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    return mapHostError(err);
  }
}
