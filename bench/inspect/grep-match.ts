/**
 * grep's matcher without I/O: `matchFiles` (what a regex worker runs) over an 8 MiB log-like
 * corpus for a few typical patterns, against a raw baseline that splits and decodes the same lines
 * without matching. With RE2_MODULE=/path/to/node_modules/re2 it also times the same per-line
 * scan with RE2 (the `re2` addon is not a dependency: this is the evidence for keeping V8's engine).
 *
 *   npx tsx bench/inspect/grep-match.ts
 *   RE2_MODULE=/tmp/re2/node_modules/re2 npx tsx bench/inspect/grep-match.ts
 */
import { createRequire } from "node:module";
import { matchFiles } from "../../packages/server/src/inspect/grep-matcher.js";
import { translateRustRegex } from "../../packages/server/src/inspect/rust-regex.js";

const RUNS = Number(process.env["BENCH_RUNS"] ?? 7);
const words = ["alpha", "beta", "gamma", "timeout", "connection", "user", "naïve", "Ünïcode", "retry"];
const lines: string[] = [];
let size = 0;
for (let i = 0; size < 8 << 20; i++) {
  const w = (k: number) => words[(i * 7 + k * 3) % words.length];
  const level = i % 50 === 0 ? "ERROR" : i % 7 === 0 ? "WARN" : "INFO";
  const extra = i % 997 === 0 ? " needle" : i % 13 === 0 ? ` mail ${w(1)}@example.com` : "";
  const line = `2026-12-07T04:${String(i % 60).padStart(2, "0")}:00Z ${level} [${w(0)}] ${w(2)} ${w(3)} id=${i} code=${100 + (i % 900)}-${1000 + (i % 9000)}${extra}`;
  lines.push(line);
  size += Buffer.byteLength(line) + 1;
}
const data = new Uint8Array(Buffer.from(`${lines.join("\n")}\n`));
const patterns = ["needle", "ERROR|WARN", "[a-z]+@[a-z]+\\.com", "(?i)TIMEOUT", "\\d{3}-\\d{4}", "\\w+ï\\w*"];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function time(fn: () => number): { ms: number; n: number } {
  let n = 0;
  const ts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    n = fn();
    ts.push(performance.now() - t0);
  }
  return { ms: median(ts), n };
}

const decoder = new TextDecoder("utf-8");
/** Split and decode every line, match nothing: the floor under any engine here. */
function eachLine(visit: (text: string) => number): number {
  let n = 0;
  let pos = 0;
  while (pos < data.length) {
    const nl = data.indexOf(10, pos);
    const end = nl < 0 ? data.length : nl;
    n += visit(decoder.decode(data.subarray(pos, end)));
    pos = end + 1;
  }
  return n;
}

interface Engine {
  lastIndex: number;
  exec(s: string): { index: number; 0: string } | null;
}
function countAll(re: Engine, text: string): number {
  let n = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    n++;
    if (m[0].length === 0) re.lastIndex++;
  }
  return n;
}

const re2Path = process.env["RE2_MODULE"];
const RE2 = re2Path
  ? (createRequire(import.meta.url)(re2Path) as new (
      s: string,
      f: string,
    ) => Engine)
  : undefined;

const raw = time(() => eachLine(() => 0));
console.log(`corpus ${(data.length / 1048576).toFixed(1)} MiB, ${lines.length} lines, median of ${RUNS}`);
console.log(`raw split+decode (baseline): ${raw.ms.toFixed(1)} ms`);
console.log("| pattern | matches | matchFiles ms | ÷ raw | JS per-line ms | RE2 per-line ms | RE2 ÷ JS |");
console.log("|---|---|---|---|---|---|---|");
for (const p of patterns) {
  const w = translateRustRegex(p);
  const job = () => ({
    patterns: [w],
    maxCount: Number.MAX_SAFE_INTEGER,
    remainingTotal: Number.MAX_SAFE_INTEGER,
    before: 0,
    after: 0,
    files: [{ id: 0, data }],
  });
  const mf = time(() => matchFiles(job())[0]!.matches);
  const js = new RegExp(w.source, `${w.flags}g`);
  const jsLine = time(() => eachLine((t) => countAll(js, t)));
  let re2Cell = "–";
  let ratio = "–";
  if (RE2) {
    const r = new RE2(p, "gu");
    const re2Line = time(() => eachLine((t) => countAll(r, t)));
    if (re2Line.n !== jsLine.n) re2Cell = `${re2Line.ms.toFixed(1)} (${re2Line.n} matches ≠ ${jsLine.n})`;
    else re2Cell = re2Line.ms.toFixed(1);
    ratio = (re2Line.ms / jsLine.ms).toFixed(2);
  }
  console.log(
    `| \`${p}\` | ${mf.n} | ${mf.ms.toFixed(1)} | ${(mf.ms / raw.ms).toFixed(2)} | ${jsLine.ms.toFixed(1)} | ${re2Cell} | ${ratio} |`,
  );
}
