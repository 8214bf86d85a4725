/**
 * Issue 10 §7: grep over a directory tree 2,000 levels deep (made by a tenant's own run) took 28 s
 * with no deadline, 83 s with 8 at once. The walk now has a depth budget and a deadline of its
 * own, and a project runs a bounded number of searches at once (the rest get a 429).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/tokens.js";
import { isKind } from "../../src/core/errors.js";
import { InspectService, layerFs } from "../../src/inspect/inspect-service.js";
import { MergedView } from "../../src/layers/merged-view.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

const LEVELS = 2000;
const DEEP_TREE = `i=0; while [ $i -lt ${LEVELS} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo needle > f`;

let t: TestServer;
let registry: RegistryHandle | undefined;
let tenant: string;
let deep: string;
let tree: string;

beforeAll(async () => {
  t = await startTestServer({ runtime: "oci" });
  const imported = await importBusybox(t);
  registry = imported.registry;
  const def = await t.server.store.projects.findByName("default");
  if (!def) throw new Error("no default project");
  tenant = (await issueToken(t.server.store, { projectId: def.id })).secret;
  const r = await fetch(`${t.url}/v1/instances`, {
    method: "POST",
    headers: { authorization: `Bearer ${tenant}`, "content-type": "application/json" },
    body: JSON.stringify({ command: DEEP_TREE, shell: true, image: imported.image, cwd: "/tmp" }),
  });
  const op = await waitOperation(t, ((await r.json()) as { uuid: string }).uuid, 180_000);
  expect(op["status"], String(op["error"])).toBe("SUCCESS");
  deep = String(op["result_image_uuid"]);
  // The same shape on disk for the service-level checks (deadline, per-project limit).
  tree = mkdtempSync(join(tmpdir(), "contree-deep-tree-"));
  execFileSync("sh", ["-c", `cd "${tree}" && ${DEEP_TREE}`]);
}, 240_000);
afterAll(async () => {
  await t?.close();
  await registry?.stop();
  if (tree) await rm(tree, { recursive: true, force: true });
});

async function grep(query: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${t.url}/v1/inspect/${deep}/grep?${query}`, {
    headers: { authorization: `Bearer ${tenant}` },
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe("grep over a 2,000-level tree", () => {
  it("stops at the depth budget and says so", async () => {
    const r = await grep("pattern=needle&path=/tmp");
    expect(r.status).toBe(200);
    expect(r.body["truncated"]).toBe(true);
    expect(r.body["truncated_reason"]).toBe("depth");
    expect(r.body["matches"]).toEqual([]);
  });

  it("8 at once from one project: each answered, the excess with a 429", async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => grep("pattern=needle&path=/tmp")));
    for (const r of all) {
      if (r.status === 429) {
        expect(r.body).toEqual({ error: expect.stringMatching(/too many searches/), status: 429 });
      } else {
        expect(r.status).toBe(200);
        expect(r.body["truncated"]).toBe(true);
      }
    }
    expect(all.some((r) => r.status === 200)).toBe(true);
  });
});

describe("the walk's own deadline and the per-project bound (service level, same tree)", () => {
  it("a walk that cannot finish in time ends at the deadline with a partial result", async () => {
    const inspect = new InspectService({ grep: { deadlineMs: 20, maxDepth: 100_000 } });
    try {
      const r = await inspect.grep(layerFs("deep", [tree]), grepReq(), "p1");
      expect(r.truncated).toBe(true);
      expect(r.truncated_reason).toBe("deadline");
    } finally {
      await inspect.close();
    }
  });

  it("a project over its bound is refused at once; another project is not", async () => {
    const inspect = new InspectService({ grepPerProject: 1 });
    try {
      const fs = layerFs("deep", [tree]);
      const first = inspect.grep(fs, grepReq(), "p1");
      const second = inspect.grep(fs, grepReq(), "p1").then(
        () => "ran",
        (e: unknown) => (isKind(e, "resource_exhausted") ? "refused" : String(e)),
      );
      const other = inspect.grep(fs, grepReq(), "p2");
      expect(await second).toBe("refused");
      expect((await first).truncated).toBe(true);
      expect((await other).truncated).toBe(true);
      // Once the first is done, the project may search again.
      expect((await inspect.grep(fs, grepReq(), "p1")).truncated).toBe(true);
    } finally {
      await inspect.close();
    }
  });

  it("while one project's searches run, another project's search gets its results", async () => {
    // Two long walks from p1 (as many as there are workers and p1 may run) used to hold both
    // regex workers to their deadline, so p2's search came back empty, truncated "busy".
    const inspect = new InspectService({ grep: { deadlineMs: 3000, maxDepth: 100_000 }, grepWorkers: 2 });
    const small = mkdtempSync(join(tmpdir(), "contree-grep-small-"));
    try {
      execFileSync("sh", ["-c", `echo needle > "${small}/f"`]);
      let walksDone = 0;
      const walks = [1, 2].map(() =>
        inspect.grep(layerFs("deep", [tree]), grepReq(), "p1").finally(() => walksDone++),
      );
      await new Promise((r) => setTimeout(r, 300)); // let p1's walks start first
      const other = await inspect.grep(layerFs("small", [small]), grepReq(), "p2");
      // Answered while p1's walks still run, not after one of them gave its worker back.
      expect(walksDone).toBe(0);
      expect(other.truncated).toBe(false);
      expect(other.matches.map((m) => m.path)).toEqual(["/f"]);
      for (const r of await Promise.all(walks)) expect(r.truncated_reason).toBe("deadline");
    } finally {
      await inspect.close();
      await rm(small, { recursive: true, force: true });
    }
  });

  it("one huge directory stops at the entry cap", async () => {
    const inspect = new InspectService({ grep: { maxEntries: 100 } });
    const wide = mkdtempSync(join(tmpdir(), "contree-grep-wide-"));
    try {
      execFileSync("sh", [
        "-c",
        `cd "${wide}" && i=0; while [ $i -lt 1000 ]; do echo needle > f$i; i=$((i+1)); done`,
      ]);
      const r = await inspect.grep(layerFs("wide", [wide]), grepReq(), "p1");
      expect(r.truncated_reason).toBe("entries");
      expect(r.matches.length).toBeLessThanOrEqual(100);
      // The listing itself stops at its budget instead of stat-ing all 1,000 entries.
      const view = new MergedView([wide]);
      expect(await view.list("/", { maxEntries: 101 })).toHaveLength(101);
      expect(await view.list("/", { deadline: 0 })).toEqual([]);
      expect(await view.list("/")).toHaveLength(1000);
    } finally {
      await inspect.close();
      await rm(wide, { recursive: true, force: true });
    }
  });
});

function grepReq() {
  return {
    patterns: ["needle"],
    paths: ["/"],
    globs: [],
    caseMode: "sensitive" as const,
    before: 0,
    after: 0,
  };
}
