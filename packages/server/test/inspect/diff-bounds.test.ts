/**
 * The diff's bounds at the service level, over real layer directories: the deadline, the depth
 * budget, the bytes compared, and the text diff's per-file, total and edit bounds. Also the
 * ancestor walk (a top layer over a base) against the full walk: the same entries.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DiffEntry, DiffLimits, DiffRequest } from "../../src/inspect/diff.js";
import { InspectService, layerFs } from "../../src/inspect/inspect-service.js";

let dir: string;
let base: string;
let top: string;
let other: string;

const sh = (script: string) => execFileSync("sh", ["-c", script]);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "contree-diff-bounds-"));
  base = join(dir, "base");
  top = join(dir, "top");
  other = join(dir, "other");
  sh(`mkdir -p "${base}/t" "${top}/t" "${other}/t"
    cd "${base}/t" && seq 1 100 > many && printf 'a\\n' > small && head -c 300000 /dev/zero | tr '\\0' x > big
    head -c 4096 /dev/zero > same1 && head -c 4096 /dev/zero > same2
    cd "${top}/t" && seq 1 100 | sed 's/$/!/' > many && printf 'b\\n' > small && head -c 300000 /dev/zero | tr '\\0' y > big
    head -c 4096 /dev/zero | tr '\\0' z > same1 && head -c 4096 /dev/zero | tr '\\0' z > same2
    cd "${other}" && i=0; while [ $i -lt 40 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo x > f`);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function collect(
  limits: Partial<DiffLimits>,
  req: Partial<DiffRequest>,
  older: string[] = [base],
  newer: string[] = [top, base],
): Promise<{ entries: DiffEntry[]; truncated: boolean; reason?: string; walk: string }> {
  const inspect = new InspectService({ diff: limits });
  try {
    const { entries, outcome } = await inspect.diff(layerFs("old", older), layerFs("new", newer), {
      path: "/",
      text: false,
      limit: 10_000,
      upper: null,
      ...req,
    });
    const out: DiffEntry[] = [];
    for await (const e of entries) out.push(e);
    return {
      entries: out,
      truncated: outcome.truncated,
      reason: outcome.truncatedReason,
      walk: outcome.walk,
    };
  } finally {
    await inspect.close();
  }
}

describe("diff bounds (service level)", () => {
  it("the ancestor walk and the full walk agree", async () => {
    const full = await collect({}, {});
    const layers = await collect({}, { upper: { side: "new", layers: 1 } });
    expect(layers.walk).toBe("layers");
    expect(full.walk).toBe("full");
    expect(layers.entries).toEqual(full.entries);
    expect(full.entries.map((e) => `${e.path} ${e.changes?.join(",")}`)).toEqual([
      "/t/big content",
      "/t/many size",
      "/t/same1 content",
      "/t/same2 content",
      "/t/small content",
    ]);
  });

  it("a deadline already past ends the walk at once", async () => {
    const r = await collect({ deadlineMs: 0 }, {});
    expect(r).toMatchObject({ entries: [], truncated: true, reason: "deadline" });
  });

  it("the depth budget cuts a deep tree", async () => {
    const r = await collect({ maxDepth: 10 }, {}, [base], [other]);
    expect(r.truncated).toBe(true);
    expect(r.reason).toBe("depth");
    expect(r.entries.length).toBeGreaterThan(0);
    expect(r.entries.every((e) => e.path.split("/").length - 1 <= 10)).toBe(true);
  });

  it("bytes compared are bounded", async () => {
    const r = await collect({ maxCompareBytes: 10_000 }, {});
    expect(r).toMatchObject({ truncated: true, reason: "compare_bytes" });
  });

  it("text diffs: per-file size, total size and edit bounds say why a diff is missing", async () => {
    const byPath = (x: { entries: DiffEntry[] }) => Object.fromEntries(x.entries.map((e) => [e.path, e]));
    const r = byPath(await collect({ maxTextFileBytes: 256 * 1024, maxEdits: 50 }, { text: true }));
    expect(r["/t/big"]!.diff_omitted).toBe("file_size");
    expect(r["/t/many"]!.diff_omitted).toBe("edits");
    expect(r["/t/same1"]!.diff_omitted).toBe("binary");
    expect(r["/t/small"]!.diff).toBe("--- a/t/small\n+++ b/t/small\n@@ -1,1 +1,1 @@\n-a\n+b\n");
    const tight = byPath(await collect({ maxTextTotalBytes: 500 }, { text: true }));
    expect(tight["/t/many"]!.diff_omitted).toBe("total");
    expect(tight["/t/small"]!.diff).toContain("+b");
  });
});
