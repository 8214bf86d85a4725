/**
 * Path resolution through a chain of overlayfs "upper format" directories (top-most first), the
 * way the kernel's overlayfs would see them, confined to the image root.
 *
 * The algorithm is written once as generators that yield filesystem questions (`FsOp`); the
 * layer applier answers them synchronously, the read-only merged view asynchronously. Every host
 * path asked about is `layerRoot/c1/…/cn` where each ci was seen by lstat to be a real directory
 * in that layer, so symlinks stored in layers are never followed by the host.
 */
import fs from "node:fs";
import { getAttribute, getAttributeSync } from "@napi-rs/xattr";
import { invalidArgument, notFound, unprocessable } from "../core/errors.js";

type FsOp = { op: "lstat"; path: string } | { op: "readlink"; path: string } | { op: "opaque"; path: string };

type Step<T> = Generator<FsOp, T, unknown>;

function* lstat(path: string): Step<fs.Stats | null> {
  return (yield { op: "lstat", path }) as fs.Stats | null;
}
function* readlink(path: string): Step<string> {
  return (yield { op: "readlink", path }) as string;
}
function* isOpaque(path: string): Step<boolean> {
  return (yield { op: "opaque", path }) as boolean;
}

export const OPAQUE_XATTR = "trusted.overlay.opaque";
const MAX_SYMLINK_HOPS = 40;

export function isWhiteout(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** What a name is in the merged view. */
export type MergedNode =
  | { kind: "missing" }
  /** Not a directory: it comes from exactly one layer. */
  | { kind: "leaf"; layer: number; st: fs.Stats }
  /** A directory: the layers that contribute to it, top-most first, and the top one's stat. */
  | { kind: "dir"; layers: number[]; st: fs.Stats };

export const MISSING: MergedNode = { kind: "missing" };

export function hostPath(root: string, parts: readonly string[]): string {
  return parts.length === 0 ? root : `${root}/${parts.join("/")}`;
}

/** Look up `name` inside the merged directory `parentParts` made of `parentLayers`. */
export function* lookupChild(
  roots: readonly string[],
  parentParts: readonly string[],
  parentLayers: readonly number[],
  name: string,
): Step<MergedNode> {
  const parts = [...parentParts, name];
  for (let k = 0; k < parentLayers.length; k++) {
    const i = parentLayers[k]!;
    const p = hostPath(roots[i]!, parts);
    const st = yield* lstat(p);
    if (!st) continue;
    if (isWhiteout(st)) return MISSING;
    if (!st.isDirectory()) return { kind: "leaf", layer: i, st };
    const layers = [i];
    if (!(yield* isOpaque(p))) {
      for (let m = k + 1; m < parentLayers.length; m++) {
        const j = parentLayers[m]!;
        const pj = hostPath(roots[j]!, parts);
        const sj = yield* lstat(pj);
        if (!sj) continue;
        if (!sj.isDirectory()) break; // a lower non-directory (or whiteout) ends the merge
        layers.push(j);
        if (yield* isOpaque(pj)) break;
      }
    }
    return { kind: "dir", layers, st };
  }
  return MISSING;
}

/** Split a path into components, dropping empty and "." ones; ".." is kept for the resolver. */
export function splitPath(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

export interface DirCache {
  get(key: string): MergedNode | undefined;
  set(key: string, node: MergedNode): void;
}

export interface ResolvedParent {
  /** Resolved (symlink-free) logical path of the directory, from the root. */
  parts: string[];
  /** nodes[k] describes parts[0..k]: a dir, or missing (then every later one is missing too). */
  nodes: MergedNode[];
  /** Contributing layers of the directory if it exists, else []. */
  layers: number[];
}

interface ResolveOptions {
  cache?: DirCache;
  /** Missing components are not_found (readers) instead of being kept for creation (applier). */
  strict?: boolean;
}

/**
 * Resolve a directory path, following symlinks inside the root (absolute targets restart at the
 * root, ".." stops at the root). A component that is a non-directory, non-symlink is
 * unprocessable ("not a directory").
 */
export function* resolveDir(
  roots: readonly string[],
  components: readonly string[],
  opts: ResolveOptions = {},
): Step<ResolvedParent> {
  const all = roots.map((_, i) => i);
  const parts: string[] = [];
  const nodes: MergedNode[] = [];
  const todo = [...components];
  let hops = 0;
  const layersAt = (): number[] => {
    if (nodes.length === 0) return all;
    const n = nodes[nodes.length - 1]!;
    return n.kind === "dir" ? n.layers : [];
  };
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      parts.pop();
      nodes.pop();
      continue;
    }
    const parentLayers = layersAt();
    if (parentLayers.length === 0) {
      parts.push(c);
      nodes.push(MISSING);
      continue;
    }
    const key = parts.length === 0 ? c : `${parts.join("/")}/${c}`;
    let node = opts.cache?.get(key);
    if (node === undefined) {
      node = yield* lookupChild(roots, parts, parentLayers, c);
      if (node.kind === "dir") opts.cache?.set(key, node);
    }
    if (node.kind === "leaf") {
      if (node.st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) throw invalidArgument("too many levels of symbolic links");
        const target = yield* readlink(hostPath(roots[node.layer]!, [...parts, c]));
        if (target.startsWith("/")) {
          parts.length = 0;
          nodes.length = 0;
        }
        todo.unshift(...target.split("/"));
        continue;
      }
      throw unprocessable("not a directory");
    }
    if (node.kind === "missing" && opts.strict) throw notFound("no such file or directory");
    parts.push(c);
    nodes.push(node);
  }
  return { parts, nodes, layers: layersAt() };
}

interface Resolved {
  parent: ResolvedParent;
  /** Final component, or null when the path names the root itself. */
  name: string | null;
  node: MergedNode;
}

/**
 * Resolve a full path for reading (strict: missing parents are not_found). The final component
 * is not followed unless `follow`; then symlinks are chased inside the root up to the hop limit.
 */
export function* resolvePath(
  roots: readonly string[],
  path: string,
  follow: boolean,
  cache?: DirCache,
): Step<Resolved> {
  let comps = splitPath(path);
  let hops = 0;
  for (;;) {
    if (comps.length === 0 || comps[comps.length - 1] === "..") {
      // names a directory (the root, or "x/.."): resolve it as one
      const dir = yield* resolveDir(roots, comps, { cache, strict: true });
      if (dir.parts.length === 0) {
        const st = yield* rootStat(roots);
        return { parent: dir, name: null, node: { kind: "dir", layers: dir.layers, st } };
      }
      comps = dir.parts;
    }
    const name = comps[comps.length - 1]!;
    const parent = yield* resolveDir(roots, comps.slice(0, -1), { cache, strict: true });
    const node = yield* lookupChild(roots, parent.parts, parent.layers, name);
    if (follow && node.kind === "leaf" && node.st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw invalidArgument("too many levels of symbolic links");
      const target = yield* readlink(hostPath(roots[node.layer]!, [...parent.parts, name]));
      comps = [...(target.startsWith("/") ? [] : parent.parts), ...splitPath(target)];
      continue;
    }
    return { parent, name, node };
  }
}

function* rootStat(roots: readonly string[]): Step<fs.Stats> {
  const st = yield* lstat(roots[0]!);
  if (!st) throw notFound("image root missing");
  return st;
}

export function runSync<T>(g: Step<T>): T {
  let r = g.next();
  while (!r.done) {
    const op = r.value;
    let v: unknown;
    try {
      v = answerSync(op);
    } catch (err) {
      r = g.throw(err);
      continue;
    }
    r = g.next(v);
  }
  return r.value;
}

export async function runAsync<T>(g: Step<T>): Promise<T> {
  let r = g.next();
  while (!r.done) {
    const op = r.value;
    let v: unknown;
    try {
      v = await answerAsync(op);
    } catch (err) {
      r = g.throw(err);
      continue;
    }
    r = g.next(v);
  }
  return r.value;
}

function answerSync(op: FsOp): unknown {
  switch (op.op) {
    case "lstat":
      return fs.lstatSync(op.path, { throwIfNoEntry: false }) ?? null;
    case "readlink":
      return fs.readlinkSync(op.path);
    case "opaque":
      return opaqueValue(getXattrSync(op.path, OPAQUE_XATTR));
  }
}

async function answerAsync(op: FsOp): Promise<unknown> {
  switch (op.op) {
    case "lstat":
      try {
        return await fs.promises.lstat(op.path);
      } catch (err) {
        if (isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR")) return null;
        throw err;
      }
    case "readlink":
      return fs.promises.readlink(op.path);
    case "opaque":
      try {
        return opaqueValue(await getAttribute(op.path, OPAQUE_XATTR));
      } catch (err) {
        if (isNoXattr(err)) return false;
        throw err;
      }
  }
}

function opaqueValue(v: Buffer | null): boolean {
  return v !== null && v.length === 1 && v[0] === 0x79; // "y"
}

export function getXattrSync(path: string, name: string): Buffer | null {
  try {
    return getAttributeSync(path, name);
  } catch (err) {
    if (isNoXattr(err)) return null;
    throw err;
  }
}

function isNoXattr(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : "";
  return /No data available|ENODATA|not supported/i.test(msg);
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}
