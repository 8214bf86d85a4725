import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type MatchJob, matchFiles } from "./grep-matcher.js";
import { RegexWorkerPool } from "./regex-worker-pool.js";
import { translateRustRegex } from "./rust-regex.js";

const enc = (s: string) => new TextEncoder().encode(s);
const TEXT = "alpha\nbeta root\ngamma\ndelta root root\nepsilon\nzeta\nröot ü root\n";

function job(over: Partial<MatchJob> & { pattern?: string }): MatchJob {
  const { pattern, ...rest } = over;
  return {
    patterns: [translateRustRegex(pattern ?? "root")],
    maxCount: 1000,
    remainingTotal: 1000,
    before: 0,
    after: 0,
    files: [{ id: 0, data: enc(TEXT) }],
    ...rest,
  };
}

describe("line matcher", () => {
  it("reports lines, byte offsets and submatches", () => {
    const [r] = matchFiles(job({}));
    expect(r!.matches).toBe(3);
    expect(r!.rows.map((x) => x.line_number)).toEqual([2, 4, 7]);
    expect(r!.rows[0]).toEqual({
      line_number: 2,
      absolute_offset: 6,
      line_text: "beta root\n",
      line_bytes: 10,
      submatches: [{ text: "root", start: 5, end: 9 }],
      type: "match",
    });
    expect(r!.rows[1]!.submatches).toEqual([
      { text: "root", start: 6, end: 10 },
      { text: "root", start: 11, end: 15 },
    ]);
    // "röot ü " is 9 bytes: offsets are bytes, not UTF-16 units
    expect(r!.rows[2]!.submatches).toEqual([{ text: "root", start: 9, end: 13 }]);
    expect(r!.more).toBe(false);
  });

  it("adds context without repeating lines, and honours limits", () => {
    const [r] = matchFiles(job({ before: 1, after: 1 }));
    expect(r!.rows.map((x) => `${x.line_number}${x.type[0]}`)).toEqual([
      "1c",
      "2m",
      "3c",
      "4m",
      "5c",
      "6c",
      "7m",
    ]);
    const [m] = matchFiles(job({ maxCount: 1, after: 1 }));
    expect(m!.rows.map((x) => `${x.line_number}${x.type[0]}`)).toEqual(["2m", "3c"]);
    expect(m!.more).toBe(true);
    const two = matchFiles(
      job({
        remainingTotal: 2,
        files: [
          { id: 0, data: enc(TEXT) },
          { id: 1, data: enc(TEXT) },
        ],
      }),
    );
    expect(two).toHaveLength(1);
    expect(two[0]!.matches).toBe(2);
  });

  it("merges several patterns and handles empty matches", () => {
    const [r] = matchFiles(job({ patterns: [translateRustRegex("ro+t"), translateRustRegex("beta")] }));
    expect(r!.rows[0]!.submatches.map((s) => s.text)).toEqual(["beta", "root"]);
    const [e] = matchFiles(job({ pattern: "^" }));
    expect(e!.matches).toBe(7);
    expect(e!.rows[0]!.submatches).toEqual([]);
  });
});

describe("regex worker pool", () => {
  const pool = new RegexWorkerPool(1);
  afterAll(() => pool.close());

  it("runs the matcher in a worker", async () => {
    const lease = await pool.acquire(5000);
    try {
      const out = await lease!.run(job({}), 10_000);
      expect(out.kind).toBe("done");
      if (out.kind === "done") expect(out.result[0]!.matches).toBe(3);
    } finally {
      lease!.release();
    }
  });

  it("stops a catastrophic regex at the deadline and replaces the worker", async () => {
    const lease = await pool.acquire(5000);
    const t = Date.now();
    const out = await lease!.run(
      job({ pattern: "(a*a*)*b", files: [{ id: 0, data: enc(`${"a".repeat(40)}\n`) }] }),
      300,
    );
    lease!.release();
    expect(out.kind).toBe("timeout");
    expect(Date.now() - t).toBeLessThan(3000);
    const again = await pool.acquire(5000);
    const ok = await again!.run(job({}), 10_000);
    again!.release();
    expect(ok.kind).toBe("done");
  });

  it("starts its worker from the built module under plain node (no TypeScript loader)", () => {
    // What the server runs: dist/, built by `npm run build` before the tests.
    const built = fileURLToPath(new URL("../../dist/inspect/regex-worker-pool.js", import.meta.url));
    const script = `
      const { RegexWorkerPool } = await import(${JSON.stringify(built)});
      const pool = new RegexWorkerPool(1);
      const lease = await pool.acquire(5000);
      const out = await lease.run(${JSON.stringify({ ...job({}), files: [] })}, 10000);
      lease.release();
      await pool.close();
      process.stdout.write(JSON.stringify(out));`;
    const dir = mkdtempSync(join(tmpdir(), "contree-worker-"));
    try {
      writeFileSync(join(dir, "main.mjs"), script);
      const out = execFileSync(process.execPath, [join(dir, "main.mjs")], {
        env: { PATH: process.env["PATH"] ?? "" },
        encoding: "utf8",
      });
      expect(JSON.parse(out)).toEqual({ kind: "done", result: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
