/** One line of a diff: kept, removed from the old text, or added in the new one. */
export interface DiffLine {
  op: " " | "-" | "+";
  text: string;
  /** Line numbers (1-based) in the old and new texts; 0 where the line is not in that side. */
  oldNo: number;
  newNo: number;
}

/**
 * Myers' O(ND) line diff (the shortest edit script), bounded: past `maxEdits` edits it gives up
 * (undefined) rather than take quadratic time and memory on two unrelated files.
 */
export function lineDiff(
  a: readonly string[],
  b: readonly string[],
  maxEdits = 4000,
): DiffLine[] | undefined {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, maxEdits);
  const off = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
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
        found = true;
        break;
      }
    }
    if (found) {
      trace.push(v);
      v = v.slice();
    }
  }
  if (!found) return undefined;
  // Walk the trace back from (n, m) to (0, 0).
  const out: DiffLine[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 2; d >= 0; d--) {
    const vd = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && vd[off + k - 1]! < vd[off + k + 1]!) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : vd[off + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      out.push({ op: " ", text: a[x - 1]!, oldNo: x, newNo: y });
      x--;
      y--;
    }
    if (d === 0) break;
    if (x === prevX) {
      out.push({ op: "+", text: b[y - 1]!, oldNo: 0, newNo: y });
      y--;
    } else {
      out.push({ op: "-", text: a[x - 1]!, oldNo: x, newNo: 0 });
      x--;
    }
  }
  while (x > 0 && y > 0) {
    out.push({ op: " ", text: a[x - 1]!, oldNo: x, newNo: y });
    x--;
    y--;
  }
  return out.reverse();
}

/** Text as lines (a final newline does not make an empty last line). */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}
