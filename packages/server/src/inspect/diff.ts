/**
 * What changed between two image filesystems (inspect's diff): entries added, removed and
 * changed (type, size, mode, owner, symlink target, and bytes when the sizes are equal), in path
 * order, pre-order, produced one at a time so a response streams them. Optional unified text
 * diffs of small text files. Bounded: entries, time, depth, bytes compared, text size.
 *
 * When one view's chain is the other's plus layers on top (an ancestor), only the paths those
 * layers hold can differ: the walk visits just them (a whiteout, an opaque directory or a
 * non-directory there covers the subtree below it, which is compared whole). Otherwise both
 * merged trees are walked side by side.
 */
import type { Readable } from "node:stream";
import { invalidArgument, isKind } from "../core/errors.js";
import { type FileType, type MergedStat, MergedView } from "../layers/merged-view.js";
import { unifiedDiff } from "./line-diff.js";

export interface DiffSide {
  type: FileType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  symlink_to?: string;
}

export type DiffChange = "type" | "size" | "mode" | "owner" | "target" | "content";
export type DiffOmitted = "binary" | "file_size" | "total" | "edits";

export interface DiffEntry {
  path: string;
  status: "added" | "removed" | "changed";
  changes?: DiffChange[];
  old?: DiffSide;
  new?: DiffSide;
  /** Unified diff (text=1) of a regular text file added, removed or changed. */
  diff?: string;
  /** Why no `diff` was made for a regular file when one was asked for. */
  diff_omitted?: DiffOmitted;
}

/** What cut the diff short. */
export type DiffTruncation = "limit" | "deadline" | "depth" | "compare_bytes";

export interface DiffLimits {
  deadlineMs: number;
  maxDepth: number;
  /** Bytes read to compare same-size files, both sides counted. */
  maxCompareBytes: number;
  maxTextFileBytes: number;
  maxTextTotalBytes: number;
  maxEdits: number;
  /** Paths of the upper layers kept to guide an ancestor diff; past it, a full walk. */
  maxScopePaths: number;
}

export const DEFAULT_DIFF_LIMITS: DiffLimits = {
  deadlineMs: 20_000,
  maxDepth: 256,
  maxCompareBytes: 1024 * 1024 * 1024,
  maxTextFileBytes: 256 * 1024,
  maxTextTotalBytes: 8 * 1024 * 1024,
  maxEdits: 2000,
  maxScopePaths: 500_000,
};

export interface DiffRequest {
  /** Normalised prefix ("/" for everything). */
  path: string;
  text: boolean;
  limit: number;
  /** Ancestor diffs: which side has the extra layers, and how many (null: unrelated). */
  upper: { side: "old" | "new"; layers: number } | null;
}

/** The state a diff ends in (read after the entries are consumed). */
export interface DiffOutcome {
  truncated: boolean;
  truncatedReason?: DiffTruncation;
  /** "layers" when only the layers between the images were walked, else "full". */
  walk: "layers" | "full";
}

interface Scope {
  cover: boolean;
  children: Map<string, Scope>;
}

class Stop extends Error {}

export function diffViews(
  oldView: MergedView,
  newView: MergedView,
  req: DiffRequest,
  limits: DiffLimits = DEFAULT_DIFF_LIMITS,
): { entries: AsyncGenerator<DiffEntry>; outcome: DiffOutcome } {
  const outcome: DiffOutcome = { truncated: false, walk: req.upper ? "layers" : "full" };
  const deadline = Date.now() + limits.deadlineMs;
  let emitted = 0;
  let compared = 0;
  let textBytes = 0;
  const cut = (reason: DiffTruncation): never => {
    outcome.truncated = true;
    outcome.truncatedReason ??= reason;
    throw new Stop(reason);
  };
  const tick = () => {
    if (Date.now() >= deadline) cut("deadline");
  };
  const depthOf = (p: string) => (p === "/" ? 0 : p.split("/").length - 1);

  const lstat = async (v: MergedView, p: string): Promise<MergedStat | null> => {
    try {
      return await v.lstat(p);
    } catch (err) {
      if (isKind(err, "not_found") || isKind(err, "unprocessable")) return null;
      throw err;
    }
  };
  const side = async (v: MergedView, st: MergedStat): Promise<DiffSide> => {
    const s: DiffSide = { type: st.type, size: st.size, mode: st.mode, uid: st.uid, gid: st.gid };
    if (st.type === "symlink") s.symlink_to = await v.readlink(st.path).catch(() => "");
    return s;
  };
  const readSmall = async (v: MergedView, p: string): Promise<Buffer> => {
    const { stream } = await v.openRead(p);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  /** The text diff of a regular file, or why there is none. */
  const textDiff = async (
    path: string,
    o: MergedStat | null,
    n: MergedStat | null,
  ): Promise<Pick<DiffEntry, "diff" | "diff_omitted">> => {
    if (!req.text || (o && o.type !== "file") || (n && n.type !== "file") || (!o && !n)) return {};
    const size = Math.max(o?.size ?? 0, n?.size ?? 0);
    if (size > limits.maxTextFileBytes) return { diff_omitted: "file_size" };
    if (textBytes + (o?.size ?? 0) + (n?.size ?? 0) > limits.maxTextTotalBytes)
      return { diff_omitted: "total" };
    textBytes += (o?.size ?? 0) + (n?.size ?? 0);
    const a = o ? await readSmall(oldView, path) : Buffer.alloc(0);
    const b = n ? await readSmall(newView, path) : Buffer.alloc(0);
    if (a.includes(0) || b.includes(0)) return { diff_omitted: "binary" };
    const d = unifiedDiff(path, a.toString("utf8"), b.toString("utf8"), limits.maxEdits);
    return d === null ? { diff_omitted: "edits" } : { diff: d };
  };
  const emit = (e: DiffEntry): DiffEntry => {
    if (emitted >= req.limit) cut("limit");
    emitted++;
    return e;
  };

  async function sameContent(path: string, o: MergedStat, n: MergedStat): Promise<boolean> {
    if (o.inode === n.inode) return true; // the same stored file (an unchanged lower layer)
    if (compared + o.size + n.size > limits.maxCompareBytes) cut("compare_bytes");
    compared += o.size + n.size;
    const a = await oldView.openRead(path);
    const b = await newView.openRead(path);
    try {
      return await sameBytes(a.stream, b.stream, tick);
    } finally {
      a.stream.destroy();
      b.stream.destroy();
    }
  }

  /** Every entry below directory `path` of one view, as added or removed. */
  async function* oneSide(
    v: MergedView,
    path: string,
    status: "added" | "removed",
  ): AsyncGenerator<DiffEntry> {
    let first = true;
    for await (const st of v.walk(path)) {
      if (first) {
        first = false;
        continue;
      }
      tick();
      if (depthOf(st.path) > limits.maxDepth) cut("depth");
      const s = await side(v, st);
      const text = await textDiff(st.path, status === "removed" ? st : null, status === "added" ? st : null);
      yield emit({ path: st.path, status, [status === "added" ? "new" : "old"]: s, ...text });
    }
  }

  async function* comparePath(
    path: string,
    scope: Scope | null,
    known?: { o: MergedStat | null; n: MergedStat | null },
  ): AsyncGenerator<DiffEntry> {
    tick();
    if (depthOf(path) > limits.maxDepth) cut("depth");
    const o = known ? known.o : await lstat(oldView, path);
    const n = known ? known.n : await lstat(newView, path);
    if (!o && !n) return;
    if (!o && n) {
      yield emit({ path, status: "added", new: await side(newView, n), ...(await textDiff(path, null, n)) });
      if (n.type === "dir") yield* oneSide(newView, path, "added");
      return;
    }
    if (o && !n) {
      yield emit({
        path,
        status: "removed",
        old: await side(oldView, o),
        ...(await textDiff(path, o, null)),
      });
      if (o.type === "dir") yield* oneSide(oldView, path, "removed");
      return;
    }
    if (!o || !n) return;
    const so = await side(oldView, o);
    const sn = await side(newView, n);
    const changes: DiffChange[] = [];
    if (o.type !== n.type) changes.push("type");
    else {
      if (o.size !== n.size) changes.push("size");
      if (o.type === "symlink" && so.symlink_to !== sn.symlink_to) changes.push("target");
      if (o.type === "file" && o.size === n.size && !(await sameContent(path, o, n))) changes.push("content");
      if ((o.type === "char" || o.type === "block") && o.rdev !== n.rdev) changes.push("content");
    }
    if (o.mode !== n.mode) changes.push("mode");
    if (o.uid !== n.uid || o.gid !== n.gid) changes.push("owner");
    if (changes.length > 0 && path !== "/") {
      const text = changes.includes("size") || changes.includes("content") ? await textDiff(path, o, n) : {};
      yield emit({ path, status: "changed", changes, old: so, new: sn, ...text });
    }
    if (o.type === "dir" && n.type === "dir") yield* compareDir(path, scope);
    else if (o.type === "dir") yield* oneSide(oldView, path, "removed");
    else if (n.type === "dir") yield* oneSide(newView, path, "added");
  }

  async function* compareDir(path: string, scope: Scope | null): AsyncGenerator<DiffEntry> {
    const join = (name: string) => (path === "/" ? `/${name}` : `${path}/${name}`);
    if (scope && !scope.cover) {
      for (const name of [...scope.children.keys()].sort())
        yield* comparePath(join(name), scope.children.get(name) ?? null);
      return;
    }
    // Whole directories: one listing per side (a resolve each) instead of an lstat per name.
    const [a, b] = await Promise.all([oldView.list(path), newView.list(path)]);
    const base = (st: MergedStat) => st.path.slice(st.path.lastIndexOf("/") + 1);
    const olds = new Map(a.map((st) => [base(st), st]));
    const news = new Map(b.map((st) => [base(st), st]));
    for (const name of [...new Set([...olds.keys(), ...news.keys()])].sort())
      yield* comparePath(join(name), null, { o: olds.get(name) ?? null, n: news.get(name) ?? null });
  }

  async function buildScope(): Promise<Scope | null> {
    if (!req.upper) return null;
    const v = req.upper.side === "old" ? oldView : newView;
    const root: Scope = { cover: false, children: new Map() };
    let paths = 0;
    for await (const e of v.layerEntries(req.upper.layers, () => Date.now() >= deadline)) {
      if (++paths > limits.maxScopePaths) {
        outcome.walk = "full";
        return null;
      }
      let node = root;
      for (const c of e.path.split("/").slice(1)) {
        let next = node.children.get(c);
        if (!next) {
          next = { cover: false, children: new Map() };
          node.children.set(c, next);
        }
        node = next;
      }
      node.cover ||= e.cover;
    }
    tick();
    return root;
  }

  /** Whether the parent of `path` is itself in `v` (no symlink on the way), or missing. */
  async function lexical(v: MergedView, path: string): Promise<boolean> {
    const parent = path.slice(0, path.lastIndexOf("/")) || "/";
    try {
      return (await v.realpath(parent)) === parent;
    } catch (err) {
      if (isKind(err, "not_found") || isKind(err, "unprocessable") || isKind(err, "invalid_argument"))
        return true;
      throw err;
    }
  }

  async function* run(): AsyncGenerator<DiffEntry> {
    try {
      // The layers hold lexical paths: a prefix under a symlinked directory (/bin -> usr/bin)
      // names other paths there, so it is compared through the merged trees instead.
      const through = req.upper !== null && req.path !== "/";
      if (through && (!(await lexical(oldView, req.path)) || !(await lexical(newView, req.path))))
        outcome.walk = "full";
      let scope = outcome.walk === "full" ? null : await buildScope();
      // Walk down the scope to the prefix: a covered or missing node there decides the rest.
      const parts = req.path === "/" ? [] : req.path.split("/").slice(1);
      let full = scope === null;
      for (const c of parts) {
        if (!scope || scope.cover) break;
        const next = scope.children.get(c);
        if (!next) return; // the layers between the images hold nothing under the prefix
        scope = next;
      }
      if (scope?.cover) full = true;
      yield* req.path === "/"
        ? compareDir("/", full ? null : scope)
        : comparePath(req.path, full ? null : scope);
    } catch (err) {
      if (err instanceof Stop) return;
      throw err;
    }
  }

  return { entries: run(), outcome };
}

/** Byte equality of two streams (chunk boundaries may differ). */
async function sameBytes(a: Readable, b: Readable, tick: () => void): Promise<boolean> {
  const ia = a[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const ib = b[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let ba: Buffer | null = Buffer.alloc(0);
  let bb: Buffer | null = Buffer.alloc(0);
  for (;;) {
    tick();
    if (ba !== null && ba.length === 0) {
      const r = await ia.next();
      ba = r.done ? null : r.value;
    }
    if (bb !== null && bb.length === 0) {
      const r = await ib.next();
      bb = r.done ? null : r.value;
    }
    if (ba === null || bb === null) return ba === null && bb === null;
    const n = Math.min(ba.length, bb.length);
    if (ba.compare(bb, 0, n, 0, n) !== 0) return false;
    ba = ba.subarray(n);
    bb = bb.subarray(n);
  }
}

/**
 * How two mount chains (layer ids, top-most first) relate: when one is the other plus layers on
 * top, which side has them and how many; null when neither is a suffix of the other.
 */
export function chainRelation(
  oldChain: readonly string[],
  newChain: readonly string[],
): { side: "old" | "new"; layers: number } | null {
  const suffix = (long: readonly string[], short: readonly string[]) =>
    short.every((id, i) => long[long.length - short.length + i] === id);
  if (newChain.length >= oldChain.length && suffix(newChain, oldChain))
    return { side: "new", layers: newChain.length - oldChain.length };
  if (oldChain.length > newChain.length && suffix(oldChain, newChain))
    return { side: "old", layers: oldChain.length - newChain.length };
  return null;
}

/** A diff's path prefix: absolute, no "..", no NUL (it names a subtree, it is not resolved). */
export function diffPrefix(path: string | undefined): string {
  if (path === undefined || path === "") return "/";
  if (path.includes("\u0000")) throw invalidArgument("path contains a NUL character");
  if (path.split("/").includes("..")) throw invalidArgument("path must not contain '..'");
  return MergedView.normalize(path);
}
