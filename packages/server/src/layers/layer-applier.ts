/**
 * Apply one OCI layer (an uncompressed tar stream) into an empty directory in overlayfs "upper"
 * format, on top of already-extracted lower layers. Mounting `lowerdir=dest:lowers…` then shows
 * what GNU tar would produce applying all layers in order onto one root.
 *
 * Every path is resolved through the merged view of dest + lowers and confined to the image root
 * (see overlay-lookup.ts); the final component is never followed. Whiteouts become 0/0 character
 * devices, opaque markers `trusted.overlay.opaque=y`. Files are written with O_EXCL|O_NOFOLLOW,
 * then chown → chmod → xattrs (chown clears setuid/setgid and file capabilities), directory
 * mtimes at the end.
 *
 * Device nodes are never created live: a char or block device becomes an inert stand-in (an
 * empty mode-000 file recording the device in an xattr, inert-device.ts) that inspect still
 * reports as the device. Node has no mknod(2): FIFOs and the whiteout device come from one `sh`
 * helper per layer running `mknod` (mknod.ts); whiteouts, the common case, are hard links to one
 * 0/0 device made once per layer, as overlayfs itself shares whiteout inodes.
 *
 * It uses synchronous fs calls between awaits of the stream: run it where blocking is acceptable
 * (a worker or a child process) if the event loop must stay responsive. On failure or abort dest
 * is left partially written; the caller discards it.
 */
import fs from "node:fs";
import type { Readable } from "node:stream";
import { listAttributesSync, setAttributeSync } from "@napi-rs/xattr";
import {
  AppError,
  cancelled,
  failedPrecondition,
  internal,
  invalidArgument,
  isAppError,
  resourceExhausted,
} from "../core/errors.js";
import { DEVICE_XATTR, writeInertDevice } from "./inert-device.js";
import { Mknod } from "./mknod.js";
import {
  type DirCache,
  getXattrSync,
  hostPath,
  isWhiteout,
  lookupChild,
  type MergedNode,
  MISSING,
  OPAQUE_XATTR,
  type ResolvedParent,
  resolveDir,
  runSync,
} from "./overlay-lookup.js";
import { readTar, type TarEntry, type TarReaderOptions } from "./tar-reader.js";

interface ApplyLayerOptions {
  /** Empty directory that receives the layer. */
  dest: string;
  /** Already-extracted layers below this one, top-most first (overlay upper format). */
  lowers: string[];
  signal?: AbortSignal;
  tar?: TarReaderOptions;
  /**
   * Called with the size of each lower-layer file copied up (a hardlink to it) before the copy;
   * it may throw to stop the apply, so copies count against the same budget as streamed bytes.
   */
  onCopy?: (bytes: number) => void;
}

export interface ApplyLayerResult {
  /** Tar members read (metadata headers not counted). */
  entries: number;
  /** Regular-file bytes written, copied-up files included. */
  bytes: number;
  /** Members ignored: names with "..", unknown types, aufs metadata. */
  skipped: number;
  /** Extended attributes the filesystem refused (unsupported namespace) or that were overlay's own. */
  droppedXattrs: number;
}

/** Name of the shared whiteout inode while a layer is applied; ".wh." names are never entries. */
const WHITEOUT_TEMPLATE = ".wh..wh.contree-whiteout";
const OVERLAY_XATTR_PREFIXES = ["trusted.overlay.", "user.overlay."];
/** Attributes a layer tar may not set: overlay's own, and the device record of our stand-ins. */
const REFUSED_XATTR_PREFIXES = [...OVERLAY_XATTR_PREFIXES, DEVICE_XATTR];

export async function applyLayer(
  source: Readable | AsyncIterable<Uint8Array>,
  opts: ApplyLayerOptions,
): Promise<ApplyLayerResult> {
  const dest = fs.realpathSync(opts.dest);
  if (!fs.statSync(dest).isDirectory() || fs.readdirSync(dest).length > 0) {
    throw failedPrecondition("layer destination must be an empty directory");
  }
  const applier = new Applier(
    dest,
    opts.lowers.map((l) => fs.realpathSync(l)),
    opts.onCopy,
  );
  try {
    applier.inheritRoot();
    for await (const entry of readTar(source, opts.tar)) {
      if (opts.signal?.aborted) throw cancelled("layer extraction cancelled");
      await applier.apply(entry);
    }
    if (opts.signal?.aborted) throw cancelled("layer extraction cancelled");
    applier.finish();
  } finally {
    applier.cleanup();
  }
  return applier.result;
}

type Slot = {
  parent: ResolvedParent;
  name: string;
  host: string;
  /** The name in the merged view before this entry. */
  merged: MergedNode;
  /** What dest itself holds at the name (may be a whiteout). */
  own: fs.Stats | undefined;
};

class Applier {
  readonly result: ApplyLayerResult = { entries: 0, bytes: 0, skipped: 0, droppedXattrs: 0 };
  private readonly roots: string[];
  private readonly cache = new Map<string, MergedNode>();
  private readonly dirTimes = new Map<string, number>();
  private whiteoutTemplate: string | null = null;
  private readonly nodes = new Mknod();

  constructor(
    private readonly dest: string,
    lowers: string[],
    private readonly onCopy: ((bytes: number) => void) | undefined,
  ) {
    this.roots = [dest, ...lowers];
  }

  private get dirCache(): DirCache {
    return this.cache;
  }

  /** The merged root's attributes come from the top layer's root: start from the one below. */
  inheritRoot(): void {
    const below = this.roots[1];
    if (below === undefined) return;
    const st = fs.lstatSync(below);
    this.copyAttrs(below, this.dest, st);
  }

  async apply(e: TarEntry): Promise<void> {
    this.result.entries++;
    try {
      await this.applyEntry(e);
    } catch (err) {
      throw entryError(e.name, err);
    }
  }

  private async applyEntry(e: TarEntry): Promise<void> {
    const comps = memberComponents(e.name);
    if (comps === null || e.type === "other") {
      this.result.skipped++;
      return;
    }
    if (comps.length === 0) {
      // "./": the layer root itself
      if (e.type === "dir") this.setAttrs(this.dest, e, true);
      else this.result.skipped++;
      return;
    }
    const name = comps[comps.length - 1]!;
    const parentComps = comps.slice(0, -1);
    if (parentComps.some((c) => c.startsWith(".wh."))) {
      this.result.skipped++;
      return;
    }
    if (name.startsWith(".wh.")) {
      await this.whiteout(parentComps, name);
      return;
    }
    switch (e.type) {
      case "file":
        await this.file(parentComps, name, e);
        return;
      case "dir":
        this.dir(parentComps, name, e);
        return;
      case "symlink": {
        const slot = this.slot(parentComps, name);
        this.clear(slot);
        fs.symlinkSync(e.linkname, slot.host);
        fs.lchownSync(slot.host, e.uid, e.gid);
        fs.lutimesSync(slot.host, e.mtime, e.mtime);
        return;
      }
      case "hardlink":
        await this.hardlink(parentComps, name, e);
        return;
      case "char":
      case "block": {
        const slot = this.slot(parentComps, name);
        this.clear(slot);
        writeInertDevice(slot.host, { kind: e.type, major: e.devmajor, minor: e.devminor, mode: e.mode });
        // the stand-in keeps mode 000: the device's own mode is in its record
        this.setAttrs(slot.host, { ...e, mode: 0 }, false);
        return;
      }
      case "fifo": {
        const slot = this.slot(parentComps, name);
        this.clear(slot);
        await this.nodes.make(slot.host, e.type, e.mode, 0, 0);
        this.setAttrs(slot.host, e, false);
        return;
      }
      default:
        this.result.skipped++;
    }
  }

  private async file(parentComps: string[], name: string, e: TarEntry): Promise<void> {
    const slot = this.slot(parentComps, name);
    this.clear(slot);
    const c = fs.constants;
    const fd = fs.openSync(slot.host, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of e.body) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
        this.result.bytes += chunk.length;
      }
      fs.fchownSync(fd, e.uid, e.gid);
      fs.fchmodSync(fd, e.mode);
      this.setXattrs(slot.host, e.xattrs);
      fs.futimesSync(fd, e.mtime, e.mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  private dir(parentComps: string[], name: string, e: TarEntry): void {
    const slot = this.slot(parentComps, name);
    if (!slot.own?.isDirectory()) {
      const replaced = slot.own !== undefined;
      this.clear(slot);
      fs.mkdirSync(slot.host, 0o700);
      // Something this layer put here earlier (a file, a whiteout) already hid the lower
      // directory; the new one must not bring its contents back.
      if (replaced && this.lowerNode(slot).kind === "dir") this.setOpaque(slot.host);
      // a brand-new name was never cached; anything else may have been
      if (replaced || slot.merged.kind !== "missing") this.cache.clear();
    }
    this.setAttrs(slot.host, e, true);
  }

  private async hardlink(parentComps: string[], name: string, e: TarEntry): Promise<void> {
    const tcomps = linkComponents(e.linkname);
    if (tcomps.length === 0) throw invalidArgument("hardlink to the root");
    const tname = tcomps[tcomps.length - 1]!;
    let tparent: ResolvedParent;
    try {
      tparent = runSync(resolveDir(this.roots, tcomps.slice(0, -1), { cache: this.dirCache, strict: true }));
    } catch (err) {
      if (isAppError(err)) throw invalidArgument(`hardlink target: ${err.message}`);
      throw err;
    }
    const tnode = runSync(lookupChild(this.roots, tparent.parts, tparent.layers, tname));
    if (tnode.kind === "missing") throw invalidArgument("hardlink target not found");
    if (tnode.kind === "dir") throw invalidArgument("hardlink to a directory");
    if (tnode.layer !== 0) await this.copyUp(tparent, tname, tnode);
    const target = hostPath(this.dest, [...tparent.parts, tname]);
    const slot = this.slot(parentComps, name);
    if (slot.host === target) return;
    this.clear(slot);
    fs.linkSync(target, slot.host);
  }

  private async whiteout(parentComps: string[], marker: string): Promise<void> {
    const victim = marker.slice(4);
    // ".wh.", ".wh..", ".wh..." would name the directory itself or its parent
    if (victim === "" || victim === "." || victim === "..") throw invalidArgument("invalid whiteout name");
    const parent = runSync(resolveDir(this.roots, parentComps, { cache: this.dirCache }));
    if (marker === ".wh..wh..opq") {
      this.ensureDirs(parent);
      const host = hostPath(this.dest, parent.parts);
      if (parent.parts.length === 0) {
        await this.whiteOutLowerChildren(parent);
        this.cache.clear();
      } else {
        this.setOpaque(host);
        this.forget(parent.parts);
      }
      return;
    }
    if (victim.startsWith(".wh.")) {
      this.result.skipped++; // aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
      return;
    }
    const host = hostPath(this.dest, [...parent.parts, victim]);
    const own = parent.layers[0] === 0 ? lstatOrUndefined(host) : undefined;
    if (own !== undefined) {
      // Entries of this layer stay (whiteouts apply to lower layers only): hide what is below.
      if (own.isDirectory()) {
        this.setOpaque(host);
        this.forget([...parent.parts, victim]);
      }
      return;
    }
    const below = runSync(lookupChild(this.roots, parent.parts, parent.layers, victim));
    if (below.kind === "missing") return;
    this.ensureDirs(parent);
    await this.makeWhiteout(host);
    if (below.kind === "dir") this.forget([...parent.parts, victim]);
  }

  /** Drop cached lookups of a directory and everything below it. */
  private forget(parts: readonly string[]): void {
    const key = parts.join("/");
    this.cache.delete(key);
    const prefix = `${key}/`;
    for (const k of this.cache.keys()) if (k.startsWith(prefix)) this.cache.delete(k);
  }

  /** Overlay may not honour an opaque lower root; hide the lower root's children one by one. */
  private async whiteOutLowerChildren(root: ResolvedParent): Promise<void> {
    const names = new Set<string>();
    for (const i of root.layers) {
      if (i === 0) continue;
      for (const n of fs.readdirSync(this.roots[i]!)) names.add(n);
    }
    for (const n of names) {
      const own = lstatOrUndefined(hostPath(this.dest, [n]));
      if (own !== undefined) {
        if (own.isDirectory()) this.setOpaque(hostPath(this.dest, [n]));
        continue;
      }
      if (runSync(lookupChild(this.roots, [], root.layers, n)).kind !== "missing") {
        await this.makeWhiteout(hostPath(this.dest, [n]));
      }
    }
  }

  /** Resolve an entry's parent, create it in dest, and describe the name inside it. */
  private slot(parentComps: string[], name: string): Slot {
    const parent = runSync(resolveDir(this.roots, parentComps, { cache: this.dirCache }));
    this.ensureDirs(parent);
    const host = hostPath(this.dest, [...parent.parts, name]);
    const own = lstatOrUndefined(host);
    // dest is the top layer: what it holds decides, unless it holds nothing (one lstat per
    // entry for a first layer)
    let merged: MergedNode;
    if (own === undefined) merged = this.lowerLookup(parent, name);
    else if (isWhiteout(own)) merged = MISSING;
    else if (own.isDirectory()) merged = { kind: "dir", layers: [0], st: own };
    else merged = { kind: "leaf", layer: 0, st: own };
    return { parent, name, host, merged, own };
  }

  private lowerNode(slot: Slot): MergedNode {
    return this.lowerLookup(slot.parent, slot.name);
  }

  private lowerLookup(parent: ResolvedParent, name: string): MergedNode {
    const lowers = parent.layers.filter((i) => i !== 0);
    if (lowers.length === 0) return MISSING;
    return runSync(lookupChild(this.roots, parent.parts, lowers, name));
  }

  /** Make the name free in dest; forget cached lookups and pending times that it invalidates. */
  private clear(slot: Slot): void {
    if (slot.own !== undefined) {
      if (slot.own.isDirectory()) fs.rmSync(slot.host, { recursive: true, force: true });
      else fs.unlinkSync(slot.host);
      for (const k of this.dirTimes.keys()) {
        if (k === slot.host || k.startsWith(`${slot.host}/`)) this.dirTimes.delete(k);
      }
    }
    // only directory nodes are cached (by symlink-free path): replacing a leaf changes none
    if (slot.own?.isDirectory() || slot.merged.kind === "dir") this.cache.clear();
  }

  /**
   * Create in dest every directory of the resolved path that it lacks. A directory that exists
   * only in a lower layer is copied up with its attributes, as overlayfs does, so the merged view
   * shows the same mode, owner, mtime and xattrs.
   */
  private ensureDirs(p: ResolvedParent): void {
    for (let k = 0; k < p.parts.length; k++) {
      const node = p.nodes[k]!;
      if (node.kind === "dir" && node.layers[0] === 0) continue;
      const prefix = p.parts.slice(0, k + 1);
      const host = hostPath(this.dest, prefix);
      const own = lstatOrUndefined(host);
      let layers: number[];
      if (own?.isDirectory()) continue;
      if (own !== undefined) {
        if (!isWhiteout(own)) throw invalidArgument("path component is not a directory");
        // this layer deleted the lower one and now puts a directory back: start empty
        fs.unlinkSync(host);
        fs.mkdirSync(host, 0o755);
        this.setOpaque(host);
        layers = [0];
      } else if (node.kind === "dir") {
        const from = hostPath(this.roots[node.layers[0]!]!, prefix);
        fs.mkdirSync(host, 0o700);
        this.copyAttrs(from, host, node.st);
        layers = [0, ...node.layers];
      } else {
        // GNU tar creates missing parents with default attributes too
        fs.mkdirSync(host, 0o755);
        fs.chmodSync(host, 0o755);
        layers = [0];
      }
      const created: MergedNode = { kind: "dir", layers, st: fs.lstatSync(host) };
      p.nodes[k] = created;
      this.cache.set(prefix.join("/"), created);
    }
    const last = p.nodes[p.nodes.length - 1];
    if (last?.kind === "dir") p.layers = last.layers;
  }

  private async copyUp(
    parent: ResolvedParent,
    name: string,
    node: MergedNode & { kind: "leaf" },
  ): Promise<void> {
    this.ensureDirs(parent);
    const from = hostPath(this.roots[node.layer]!, [...parent.parts, name]);
    const to = hostPath(this.dest, [...parent.parts, name]);
    const st = node.st;
    if (st.isFile()) {
      this.onCopy?.(st.size);
      this.result.bytes += st.size;
      fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
      fs.lchownSync(to, st.uid, st.gid);
      fs.chmodSync(to, st.mode & 0o7777);
      this.copyXattrs(from, to);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
      fs.lchownSync(to, st.uid, st.gid);
    } else if (st.isFIFO()) {
      await this.nodes.make(to, "fifo", st.mode & 0o7777, 0, 0);
      fs.lchownSync(to, st.uid, st.gid);
      fs.chmodSync(to, st.mode & 0o7777);
      this.copyXattrs(from, to);
    } else {
      // layers hold device stand-ins (regular files) only, older data dirs once converted at start-up
      throw internal("live device node in a stored layer");
    }
    fs.lutimesSync(to, st.atime, st.mtime);
  }

  private copyAttrs(from: string, to: string, st: fs.Stats): void {
    fs.lchownSync(to, st.uid, st.gid);
    fs.chmodSync(to, st.mode & 0o7777);
    this.copyXattrs(from, to);
    this.dirTimes.set(to, st.mtimeMs / 1000);
  }

  private copyXattrs(from: string, to: string): void {
    for (const k of listAttributesSync(from)) {
      if (OVERLAY_XATTR_PREFIXES.some((p) => k.startsWith(p))) continue;
      const v = getXattrSync(from, k);
      if (v !== null) this.setXattr(to, k, v);
    }
  }

  /** Owner, then mode (chown clears setuid/setgid), then xattrs, then times (dirs: deferred). */
  private setAttrs(host: string, e: TarEntry, isDir: boolean): void {
    fs.lchownSync(host, e.uid, e.gid);
    fs.chmodSync(host, e.mode);
    this.setXattrs(host, e.xattrs);
    if (isDir) this.dirTimes.set(host, e.mtime);
    else fs.lutimesSync(host, e.mtime, e.mtime);
  }

  private setXattrs(host: string, xattrs: Map<string, Buffer>): void {
    for (const [k, v] of xattrs) {
      // overlay's own attributes in a layer would redirect or hide paths of other layers; a
      // device record would make inspect report a device that is not there
      if (REFUSED_XATTR_PREFIXES.some((p) => k.startsWith(p))) {
        this.result.droppedXattrs++;
        continue;
      }
      this.setXattr(host, k, v);
    }
  }

  private setXattr(host: string, k: string, v: Buffer): void {
    try {
      setAttributeSync(host, k, v);
    } catch (err) {
      const errno = osErrno(err);
      // EPERM/EOPNOTSUPP/EINVAL: a namespace this filesystem or a non-regular file refuses
      if (errno === 1 || errno === 95 || errno === 22) this.result.droppedXattrs++;
      else if (errno === 28 || errno === 122)
        throw resourceExhausted("no space left for extended attributes");
      else throw err;
    }
  }

  private setOpaque(host: string): void {
    setAttributeSync(host, OPAQUE_XATTR, "y");
  }

  private async makeWhiteout(host: string): Promise<void> {
    if (this.whiteoutTemplate === null) {
      const t = hostPath(this.dest, [WHITEOUT_TEMPLATE]);
      await this.nodes.make(t, "char", 0, 0, 0);
      this.whiteoutTemplate = t;
    }
    // one shared inode (as overlayfs does itself) instead of spawning mknod per whiteout
    fs.linkSync(this.whiteoutTemplate, host);
  }

  finish(): void {
    for (const [host, t] of this.dirTimes) {
      try {
        fs.lutimesSync(host, t, t);
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOENT") throw err;
      }
    }
  }

  cleanup(): void {
    this.nodes.close();
    if (this.whiteoutTemplate !== null) {
      const t = this.whiteoutTemplate;
      this.whiteoutTemplate = null;
      fs.rmSync(t, { force: true });
      // its unlink changed the root's mtime
      const rootTime = this.dirTimes.get(this.dest);
      if (rootTime !== undefined) fs.lutimesSync(this.dest, rootTime, rootTime);
    }
  }
}

/** Member name → components; null means "skip" (".." anywhere, as GNU tar does). Leading "/" is dropped. */
function memberComponents(name: string): string[] | null {
  const comps = name.split("/").filter((c) => c !== "" && c !== ".");
  return comps.includes("..") ? null : comps;
}

/** Hardlink target → components, GNU tar style: leading "/" and everything up to the last ".." removed. */
function linkComponents(link: string): string[] {
  const comps = link.split("/").filter((c) => c !== "" && c !== ".");
  return comps.slice(comps.lastIndexOf("..") + 1);
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  return fs.lstatSync(p, { throwIfNoEntry: false });
}

function osErrno(err: unknown): number | undefined {
  const m = err instanceof Error ? /os error (\d+)/.exec(err.message) : null;
  return m ? Number(m[1]) : undefined;
}

const INVALID_CODES = new Set([
  "ENAMETOOLONG",
  "ELOOP",
  "ENOTDIR",
  "EISDIR",
  "EEXIST",
  "ENOENT",
  "EINVAL",
  "EMLINK",
  "ENOTEMPTY",
  "EXDEV",
]);

/** Public errors name the member (layer content), never a host path. */
function entryError(member: string, err: unknown): AppError {
  const what = JSON.stringify(member.length > 200 ? `${member.slice(0, 200)}…` : member);
  if (isAppError(err)) {
    if (err.kind === "cancelled" || err.kind === "data_loss") return err;
    const kind = err.kind === "unprocessable" || err.kind === "not_found" ? "invalid_argument" : err.kind;
    return new AppError(kind, `layer entry ${what}: ${err.message}`, { cause: err });
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "ENOSPC" || code === "EDQUOT")
    return resourceExhausted("no space left for the layer", { cause: err });
  if (typeof code === "string" && INVALID_CODES.has(code)) {
    return invalidArgument(`layer entry ${what} cannot be applied (${code})`, { cause: err });
  }
  return internal(`layer entry ${what} failed`, { cause: err });
}
