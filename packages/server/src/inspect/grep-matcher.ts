/**
 * The line matcher of grep. JavaScript regular expressions backtrack, so a hostile pattern can
 * run for hours on one line; the matcher therefore runs in a worker thread (regex-worker.ts) that
 * the caller can terminate at the deadline (regex-worker-pool.ts).
 */

export interface WireRegex {
  source: string;
  flags: string;
}

export interface MatchJob {
  patterns: WireRegex[];
  /** Matches reported per file at most. */
  maxCount: number;
  /** Matches still allowed overall; later files are not searched once it is used up. */
  remainingTotal: number;
  before: number;
  after: number;
  files: Array<{ id: number; data: Uint8Array }>;
}

export interface Submatch {
  text: string;
  start: number;
  end: number;
}

export interface MatchRow {
  line_number: number;
  absolute_offset: number;
  line_text: string;
  line_bytes: number;
  submatches: Submatch[];
  type: "match" | "context";
}

export interface FileMatches {
  id: number;
  rows: MatchRow[];
  matches: number;
  /** A further match exists that a limit kept out. */
  more: boolean;
}

export function matchFiles(job: MatchJob): FileMatches[] {
  const regs = job.patterns.map((p) => new RegExp(p.source, p.flags.includes("g") ? p.flags : `${p.flags}g`));
  const decoder = new TextDecoder("utf-8");
  let remaining = job.remainingTotal;
  const results: FileMatches[] = [];

  function utf8Length(s: string, from: number, to: number): number {
    let n = 0;
    for (let i = from; i < to; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          n += 4;
          i++;
        } else n += 3;
      } else n += 3;
    }
    return n;
  }

  /** Submatches of every pattern in one line (without its newline), or null if none matches. */
  function find(text: string): Submatch[] | null {
    const spans: Array<[number, number]> = [];
    let matched = false;
    for (const re of regs) {
      re.lastIndex = 0;
      for (;;) {
        const m = re.exec(text);
        if (m === null) break;
        matched = true;
        const s = m.index;
        const e = s + m[0].length;
        if (e > s) spans.push([s, e]);
        else {
          const c = text.charCodeAt(s);
          re.lastIndex = s + (c >= 0xd800 && c <= 0xdbff ? 2 : 1);
          if (re.lastIndex > text.length) break;
        }
      }
    }
    if (!matched) return null;
    spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const out: Submatch[] = [];
    let lastEnd = -1;
    let bytePos = 0;
    let charPos = 0;
    for (const [s, e] of spans) {
      if (s < lastEnd) continue;
      bytePos += utf8Length(text, charPos, s);
      const start = bytePos;
      const len = utf8Length(text, s, e);
      bytePos += len;
      charPos = e;
      lastEnd = e;
      out.push({ text: text.slice(s, e), start, end: start + len });
    }
    return out;
  }

  for (const f of job.files) {
    if (remaining <= 0) break;
    const data = f.data;
    const limit = Math.min(job.maxCount, remaining);
    const rows: MatchRow[] = [];
    const pending: Array<[number, number, number]> = []; // before-context: line number, start, next
    let matches = 0;
    let more = false;
    let afterLeft = 0;
    let lastRow = 0;
    let lineNo = 0;
    let pos = 0;
    const row = (n: number, start: number, next: number, subs: Submatch[] | null): void => {
      rows.push({
        line_number: n,
        absolute_offset: start,
        line_text: decoder.decode(data.subarray(start, next)),
        line_bytes: next - start,
        submatches: subs ?? [],
        type: subs === null ? "context" : "match",
      });
      lastRow = n;
    };
    while (pos < data.length) {
      lineNo++;
      const nl = data.indexOf(10, pos);
      const end = nl < 0 ? data.length : nl;
      const next = nl < 0 ? data.length : nl + 1;
      if (matches < limit) {
        const subs = find(decoder.decode(data.subarray(pos, end)));
        if (subs !== null) {
          for (const [n, s, x] of pending) if (n > lastRow) row(n, s, x, null);
          pending.length = 0;
          row(lineNo, pos, next, subs);
          matches++;
          afterLeft = job.after;
        } else if (afterLeft > 0) {
          row(lineNo, pos, next, null);
          afterLeft--;
        } else if (job.before > 0) {
          pending.push([lineNo, pos, next]);
          if (pending.length > job.before) pending.shift();
        }
      } else {
        if (!more && find(decoder.decode(data.subarray(pos, end))) !== null) more = true;
        if (afterLeft > 0) {
          row(lineNo, pos, next, null);
          afterLeft--;
        }
        if (more && afterLeft === 0) break;
      }
      pos = next;
    }
    remaining -= matches;
    results.push({ id: f.id, rows, matches, more });
  }
  return results;
}
