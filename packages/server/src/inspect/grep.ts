/**
 * grep over an image (contree-api §2.8.6): walks the requested paths in the merged view (symlinks
 * reported by the walk are not followed, hidden files included), skips binary files (a NUL in
 * the first 8 KiB), and hands file contents in batches to a regex worker. Every search is
 * bounded by a deadline (the walk included: a directory tree thousands of levels deep is cut
 * off, not walked for half a minute) and by caps on depth, entries, bytes and output; hitting
 * one sets `truncated` and says which in the optional `truncated_reason`.
 */
import { invalidArgument, isKind, notFound } from "../core/errors.js";
import { type MergedStat, MergedView } from "../layers/merged-view.js";
import { compileGlobs, type GlobFilter } from "./glob.js";
import type { MatchJob, MatchRow, WireRegex } from "./grep-matcher.js";
import type { RegexWorkerPool, RunOutcome } from "./regex-worker-pool.js";
import { type CaseMode, translateRustRegex } from "./rust-regex.js";

export interface GrepRequest {
  patterns: readonly string[];
  paths: readonly string[];
  globs: readonly string[];
  maxCount?: number | undefined;
  maxTotal?: number | undefined;
  caseMode: CaseMode;
  before: number;
  after: number;
}

export interface GrepLimits {
  /** For the whole search: walk, reads and matching. */
  deadlineMs: number;
  /** Directory entries visited. */
  maxEntries: number;
  /** Directory levels below a requested path that are entered. */
  maxDepth: number;
  /** Bytes of file content read. */
  maxScanBytes: number;
  /** Larger files are not searched (and make the result truncated). */
  maxFileBytes: number;
  /** Bytes of line text in the response. */
  maxOutputBytes: number;
  maxRows: number;
  /** Matches when the request sets no max_total. */
  defaultMaxTotal: number;
}

export const DEFAULT_GREP_LIMITS: GrepLimits = {
  deadlineMs: 5000,
  maxEntries: 200_000,
  maxDepth: 256,
  maxScanBytes: 512 * 1024 * 1024,
  maxFileBytes: 64 * 1024 * 1024,
  maxOutputBytes: 4 * 1024 * 1024,
  maxRows: 20_000,
  defaultMaxTotal: 10_000,
};

export type GrepMatchRow = MatchRow & { path: string };

/** What cut a search short (first one wins). */
export type TruncatedReason =
  | "deadline"
  | "busy"
  | "depth"
  | "entries"
  | "file_size"
  | "scan_bytes"
  | "output"
  | "max_total"
  | "max_count";

export interface GrepResult {
  path: string;
  paths: string[];
  patterns: string[];
  truncated: boolean;
  /** Extension: set with `truncated`. */
  truncated_reason?: TruncatedReason;
  matches: GrepMatchRow[];
}

function cut(result: GrepResult, reason: TruncatedReason): void {
  if (!result.truncated) result.truncated_reason = reason;
  result.truncated = true;
}

const MAX_PATTERNS = 64;
const MAX_PATHS = 64;
const MAX_GLOBS = 64;
const MAX_CONTEXT = 1000;
const BINARY_PROBE = 8192;
const BATCH_BYTES = 1024 * 1024;
const BATCH_FILES = 64;

interface Candidate {
  display: string;
  real: string;
  size: number;
}

export async function grepView(
  view: MergedView,
  req: GrepRequest,
  limits: GrepLimits,
  pool: RegexWorkerPool,
): Promise<GrepResult> {
  const started = Date.now();
  const deadline = started + limits.deadlineMs;
  if (req.patterns.length === 0) throw invalidArgument("pattern is required");
  if (req.patterns.length > MAX_PATTERNS) throw invalidArgument(`at most ${MAX_PATTERNS} patterns`);
  if (req.paths.length > MAX_PATHS) throw invalidArgument(`at most ${MAX_PATHS} paths`);
  if (req.globs.length > MAX_GLOBS) throw invalidArgument(`at most ${MAX_GLOBS} globs`);
  for (const [k, v] of [
    ["before", req.before],
    ["after", req.after],
    ["max_count", req.maxCount],
    ["max_total", req.maxTotal],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0))
      throw invalidArgument(`${k} must be a non-negative integer`);
  }
  if (req.before > MAX_CONTEXT || req.after > MAX_CONTEXT)
    throw invalidArgument(`context is limited to ${MAX_CONTEXT} lines`);
  const regexes: WireRegex[] = req.patterns.map((p) => translateRustRegex(p, req.caseMode));
  const globs = compileGlobs(req.globs);

  const paths = req.paths.length === 0 ? ["/"] : req.paths;
  const targets: Array<{ display: string; real: string; st: MergedStat }> = [];
  for (const p of paths) {
    const display = MergedView.normalize(p);
    try {
      targets.push({ display, real: await view.realpath(display), st: await view.stat(display) });
    } catch (err) {
      if (isKind(err, "not_found") || isKind(err, "unprocessable"))
        throw notFound(`path not found: ${display.slice(0, 512)}`);
      throw err;
    }
  }

  const maxTotal = Math.min(req.maxTotal ?? limits.defaultMaxTotal, limits.defaultMaxTotal);
  const maxCount = req.maxCount ?? Number.MAX_SAFE_INTEGER;
  const result: GrepResult = {
    path: targets.map((t) => t.display).join(" "),
    paths: targets.map((t) => t.display),
    patterns: [...req.patterns],
    truncated: false,
    matches: [],
  };
  if (maxTotal === 0 || maxCount === 0) return result;

  const state: WalkState = {
    total: 0,
    outBytes: 0,
    scanned: 0,
    entries: 0,
    stop: false,
    deadline,
    cut: undefined,
  };
  let batch: Array<Candidate & { data: Uint8Array }> = [];
  let batchBytes = 0;

  const flush = async (): Promise<void> => {
    if (batch.length === 0 || state.stop) return;
    // Past the deadline a job would only get its worker terminated (and respawned) for nothing.
    if (Date.now() >= deadline) {
      cut(result, "deadline");
      state.stop = true;
      return;
    }
    const files = batch;
    batch = [];
    batchBytes = 0;
    const job: MatchJob = {
      patterns: regexes,
      maxCount,
      remainingTotal: maxTotal - state.total,
      before: req.before,
      after: req.after,
      files: files.map((f, id) => ({ id, data: f.data })),
    };
    // A worker only for this job: a long walk holds none, so other searches share the pool.
    // A full waiting line (other projects' searches) ends this one with what it found so far,
    // as a wait past the deadline does, rather than failing it after its walk.
    const lease = await pool
      .acquire(deadline - Date.now())
      .catch((err: unknown) => (isKind(err, "resource_exhausted") ? null : Promise.reject(err)));
    if (lease === null) {
      cut(result, "busy");
      state.stop = true;
      return;
    }
    let outcome: RunOutcome;
    try {
      outcome = await lease.run(job, deadline - Date.now());
    } finally {
      lease.release();
    }
    if (outcome.kind === "timeout") {
      cut(result, "deadline");
      state.stop = true;
      return;
    }
    if (outcome.result.length < files.length) cut(result, "max_total"); // files left unsearched
    for (const fm of outcome.result) {
      const file = files[fm.id]!;
      if (fm.more) cut(result, "max_count");
      for (const r of fm.rows) {
        state.outBytes += r.line_bytes;
        if (state.outBytes > limits.maxOutputBytes || result.matches.length >= limits.maxRows) {
          cut(result, "output");
          state.stop = true;
          return;
        }
        result.matches.push({ path: file.display, ...r });
      }
      state.total += fm.matches;
    }
    if (state.total >= maxTotal) state.stop = true;
  };

  const seen = new Set<string>();
  outer: for (const t of targets) {
    for await (const c of candidates(view, t, globs, state, limits)) {
      if (state.stop) {
        cut(result, "max_total"); // a limit was reached and this file was never searched
        break outer;
      }
      if (Date.now() >= deadline) {
        cut(result, "deadline");
        break outer;
      }
      if (seen.has(c.real)) continue; // overlapping paths are searched once
      seen.add(c.real);
      if (c.size > limits.maxFileBytes || state.scanned + c.size > limits.maxScanBytes) {
        cut(result, c.size > limits.maxFileBytes ? "file_size" : "scan_bytes");
        continue;
      }
      const data = await readWhole(view, c.real, c.size);
      if (data === null) continue;
      state.scanned += data.length;
      if (data.subarray(0, BINARY_PROBE).includes(0)) continue;
      batch.push({ ...c, data });
      batchBytes += data.length;
      if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_FILES) await flush();
    }
  }
  // The walk stopped on its own budget (it yields nothing more then).
  if (state.cut !== undefined) cut(result, state.cut);
  await flush();
  if (state.entries > limits.maxEntries) cut(result, "entries");
  return result;
}

interface WalkState {
  total: number;
  outBytes: number;
  scanned: number;
  entries: number;
  stop: boolean;
  readonly deadline: number;
  /** Set when the walk itself ran out of time or depth. */
  cut: TruncatedReason | undefined;
}

async function* candidates(
  view: MergedView,
  t: { display: string; real: string; st: MergedStat },
  globs: GlobFilter,
  state: WalkState,
  limits: GrepLimits,
): AsyncGenerator<Candidate> {
  if (t.st.type === "file") {
    yield { display: t.display, real: t.real, size: t.st.size };
    return;
  }
  if (t.st.type !== "dir") return;
  // Directories alone yield nothing, so the walk watches the clock itself.
  const stack: Array<{ path: string; depth: number }> = [{ path: t.real, depth: 0 }];
  while (stack.length > 0) {
    if (Date.now() >= state.deadline) {
      state.cut ??= "deadline";
      return;
    }
    const { path: dir, depth } = stack.pop()!;
    let entries: MergedStat[];
    try {
      // One huge directory must not outrun the entry cap or the deadline either; one entry past
      // the remaining budget is enough to tell the cap was hit.
      entries = await view.list(dir, {
        maxEntries: Math.max(0, limits.maxEntries - state.entries) + 1,
        deadline: state.deadline,
      });
    } catch {
      continue;
    }
    if (Date.now() >= state.deadline) {
      state.cut ??= "deadline";
      return;
    }
    const subdirs: string[] = [];
    for (const e of entries) {
      if (state.stop) return;
      if (++state.entries > limits.maxEntries) return;
      const rel = t.real === "/" ? e.path.slice(1) : e.path.slice(t.real.length + 1);
      const display = t.display === "/" ? `/${rel}` : `${t.display}/${rel}`;
      const name = rel.slice(rel.lastIndexOf("/") + 1);
      if (e.type === "dir") {
        if (!globs.entersDir(name, rel, display)) continue;
        if (depth + 1 > limits.maxDepth) state.cut ??= "depth";
        else subdirs.push(e.path);
      } else if (e.type === "file" && globs.includesFile(name, rel, display)) {
        yield { display, real: e.path, size: e.size };
      }
    }
    // depth-first in name order: the stack pops the first subdirectory next
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push({ path: subdirs[i]!, depth: depth + 1 });
  }
}

/** The whole content in a fresh buffer (transferable to the worker), or null if unreadable. */
async function readWhole(view: MergedView, path: string, size: number): Promise<Uint8Array | null> {
  let opened: Awaited<ReturnType<MergedView["openRead"]>>;
  try {
    opened = await view.openRead(path);
  } catch {
    return null;
  }
  const buf = new Uint8Array(Math.min(size, opened.size));
  let off = 0;
  try {
    for await (const chunk of opened.stream) {
      const c = chunk as Buffer;
      const n = Math.min(c.length, buf.length - off);
      buf.set(c.subarray(0, n), off);
      off += n;
      if (off >= buf.length) break;
    }
  } finally {
    opened.stream.destroy();
  }
  return off === buf.length ? buf : buf.subarray(0, off).slice();
}
