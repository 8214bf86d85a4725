/**
 * Unified text diffs of small files (Myers' O(ND) line diff). The edit script is bounded: past
 * `maxEdits` inserted plus deleted lines the diff is given up (null) rather than grown.
 */

type Op = { t: " " | "-" | "+"; line: string };

/** Shortest edit script from `a` to `b`, or null when it needs more than `maxEdits` edits. */
export function lineEdits(a: readonly string[], b: readonly string[], maxEdits: number): Op[] | null {
  const n = a.length;
  const m = b.length;
  const limit = Math.min(maxEdits, n + m);
  const off = limit + 1;
  const v = new Int32Array(2 * limit + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    for (let k = -d; k <= d; k += 2) {
      let x =
        k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) {
        trace.push(v.slice());
        return backtrack(a, b, trace, off);
      }
    }
    trace.push(v.slice());
  }
  return null;
}

function backtrack(a: readonly string[], b: readonly string[], trace: Int32Array[], off: number): Op[] {
  const ops: Op[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = trace.length - 1; d > 0; d--) {
    const v = trace[d - 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? k + 1 : k - 1;
    const prevX = v[off + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ t: " ", line: a[--x]! });
      y--;
    }
    if (x === prevX) ops.push({ t: "+", line: b[--y]! });
    else ops.push({ t: "-", line: a[--x]! });
  }
  while (x > 0 && y > 0) {
    ops.push({ t: " ", line: a[--x]! });
    y--;
  }
  return ops.reverse();
}

/** Lines of a text, without their terminators ("" has none). */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * `diff -u`-style hunks (3 lines of context) between two texts, headers included; null when the
 * edit script would be longer than `maxEdits`. Identical texts give "".
 */
export function unifiedDiff(path: string, oldText: string, newText: string, maxEdits = 1000): string | null {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  const ops = lineEdits(a, b, maxEdits);
  if (ops === null) return null;
  const changed = ops.map((o, i) => (o.t === " " ? -1 : i)).filter((i) => i >= 0);
  if (changed.length === 0) return "";
  const CONTEXT = 3;
  const out = [`--- a${path}`, `+++ b${path}`];
  // old/new line numbers before op i
  const at: Array<[number, number]> = [];
  let ai = 0;
  let bi = 0;
  for (const o of ops) {
    at.push([ai, bi]);
    if (o.t !== "+") ai++;
    if (o.t !== "-") bi++;
  }
  let h = 0;
  while (h < changed.length) {
    const start = Math.max(0, changed[h]! - CONTEXT);
    let last = changed[h]!;
    while (h + 1 < changed.length && changed[h + 1]! - last <= 2 * CONTEXT) last = changed[++h]!;
    h++;
    const end = Math.min(ops.length, last + CONTEXT + 1);
    const slice = ops.slice(start, end);
    const oldLen = slice.filter((o) => o.t !== "+").length;
    const newLen = slice.filter((o) => o.t !== "-").length;
    const [oa, ob] = at[start]!;
    out.push(`@@ -${oldLen === 0 ? oa : oa + 1},${oldLen} +${newLen === 0 ? ob : ob + 1},${newLen} @@`);
    for (const o of slice) out.push(`${o.t}${o.line}`);
  }
  return `${out.join("\n")}\n`;
}
