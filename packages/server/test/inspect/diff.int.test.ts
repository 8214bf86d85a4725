/**
 * GET /v1/inspect/{uuid}/diff against a real server (crun runs on busybox): what a run changed
 * (added, removed, same-size content, whiteouts, an opaque directory, mode, symlink target), both
 * directions of an ancestor diff (only the layers between are walked), unrelated images (full
 * walk), a deep flattened descendant, inline text diffs, bounds, the path filter, permissions and
 * hostile parameters.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken, parsePermissions } from "../../src/auth/tokens.js";
import type { DiffEntry } from "../../src/inspect/diff.js";
import { importBusybox } from "../harness/busybox-image.js";
import { FIXTURE_IMAGES } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { importImage } from "./helpers.js";

interface Diff {
  image: string;
  against: string;
  path: string;
  entries: DiffEntry[];
  walk: "layers" | "full";
  truncated: boolean;
  truncated_reason?: string;
}

const BASE = [
  "mkdir -p /d/keep /d/opq",
  "echo one > /d/keep/a.txt",
  "printf 'l1\\nl2\\nl3\\n' > /d/t.txt",
  "echo x > /d/opq/old1",
  "echo y > /d/opq/old2",
  "echo same > /d/same",
  "ln -s /etc/passwd /d/link",
  "echo m > /d/mode && chmod 644 /d/mode",
  "echo bye > /d/gone",
  "head -c 5000 /dev/zero > /d/bin",
  "ln -s d /dl",
].join(" && ");
const CHILD = [
  "echo new > /d/added",
  "rm /d/gone",
  "rm -rf /d/opq && mkdir /d/opq && echo z > /d/opq/new1",
  "chmod 755 /d/mode",
  "ln -sfn /etc/group /d/link",
  "printf 'l1\\nL2\\nl3\\n' > /d/t.txt",
  "echo same > /d/same",
  "echo two > /d/keep/a.txt",
  "head -c 5000 /dev/urandom > /d/bin",
].join(" && ");
const DEEP = 26;

let t: TestServer;
let registry: RegistryHandle | undefined;
let busybox: string;
let base: string;
let child: string;
let deep: string;
let features: string;
let otherToken: string;
let noListToken: string;

async function run(image: string, command: string): Promise<string> {
  const r = await t.api("/v1/instances", { method: "POST", json: { command, shell: true, image } });
  expect(r.status, await r.clone().text()).toBe(202);
  const op = await waitOperation(t, ((await r.json()) as { uuid: string }).uuid, 120_000);
  expect(op["status"], String(op["error"])).toBe("SUCCESS");
  return String(op["result_image_uuid"]);
}

beforeAll(async () => {
  t = await startTestServer({ runtime: "oci" });
  const imported = await importBusybox(t);
  registry = imported.registry;
  busybox = imported.image;
  features = await importImage(t, registry, FIXTURE_IMAGES.features, "features:latest");
  base = await run(busybox, BASE);
  child = await run(base, CHILD);
  deep = child;
  for (let i = 0; i < DEEP; i++) deep = await run(deep, `mkdir -p /deep && echo ${i} > /deep/f${i}`);
  // Past the longest mount chain the commit queues a flatten: wait for it to land.
  const until = Date.now() + 60_000;
  while ((await t.server.store.images.getAny(deep))!.mountChain.length > DEEP) {
    if (Date.now() > until) throw new Error("the deep image was never flattened");
    await new Promise((r) => setTimeout(r, 50));
  }
  const store = t.server.store;
  const other = await store.projects.create("other-team");
  otherToken = (await issueToken(store, { projectId: other.id })).secret;
  const def = await store.projects.findByName("default");
  noListToken = (await issueToken(store, { projectId: def!.id, permissions: parsePermissions("spawn") }))
    .secret;
}, 600_000);
afterAll(async () => {
  await t?.close();
  await registry?.stop();
});

async function diff(image: string, query = "", token?: string): Promise<{ status: number; body: unknown }> {
  const r = await t.api(`/v1/inspect/${image}/diff${query ? `?${query}` : ""}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await r.text();
  return { status: r.status, body: JSON.parse(text) as unknown };
}
async function ok(image: string, query = ""): Promise<Diff> {
  const r = await diff(image, query);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body as Diff;
}
const byPath = (d: Diff) => Object.fromEntries(d.entries.map((e) => [e.path, e]));
const summary = (d: Diff) =>
  d.entries.map((e) => `${e.status} ${e.path}${e.changes ? ` ${e.changes.join(",")}` : ""}`);

const CHILD_CHANGES = [
  "added /d/added",
  "changed /d/bin content",
  "removed /d/gone",
  "changed /d/keep/a.txt content",
  "changed /d/link size,target",
  "changed /d/mode mode",
  "added /d/opq/new1",
  "removed /d/opq/old1",
  "removed /d/opq/old2",
  "changed /d/t.txt content",
];

describe("image diff", () => {
  it("against the parent by default: added, removed (whiteout), content, mode, symlink, opaque dir", async () => {
    const d = await ok(child);
    expect(d.against).toBe(base);
    expect(d.walk).toBe("layers");
    expect(d.truncated).toBe(false);
    const e = byPath(d);
    expect(summary(d).filter((s) => / \/d\//.test(s))).toEqual(CHILD_CHANGES.slice().sort(pathOrder));
    expect(e["/d/mode"]!.old!.mode).toBe(0o644);
    expect(e["/d/mode"]!.new!.mode).toBe(0o755);
    expect(e["/d/link"]!.old!.symlink_to).toBe("/etc/passwd");
    expect(e["/d/link"]!.new!.symlink_to).toBe("/etc/group");
    expect(e["/d/added"]!.new).toMatchObject({ type: "file", size: 4 });
    expect(e["/d/same"]).toBeUndefined(); // rewritten with the same bytes: not a change
    expect(e["/d/t.txt"]).toMatchObject({ status: "changed", changes: ["content"] });
    expect(e["/d/keep/a.txt"]!.diff).toBeUndefined(); // no text unless asked
  });

  it("the path filter keeps the subtree; the reverse direction mirrors it", async () => {
    const d = await ok(child, "path=/d");
    expect(summary(d)).toEqual(CHILD_CHANGES.slice().sort(pathOrder));
    const rev = await ok(base, `against=${child}&path=/d/`);
    expect(rev.walk).toBe("layers");
    const flip = (s: string) =>
      s
        .replace(/^added/, "ADDED")
        .replace(/^removed/, "added")
        .replace(/^ADDED/, "removed");
    expect(summary(rev)).toEqual(summary(d).map(flip));
    expect((await ok(child, "path=/d/opq")).entries.map((x) => x.path)).toEqual([
      "/d/opq/new1",
      "/d/opq/old1",
      "/d/opq/old2",
    ]);
    expect((await ok(child, "path=/etc")).entries).toEqual([]);
    // under a symlinked directory the prefix names what the link points at (both trees walked)
    const linked = await ok(child, "path=/dl/keep");
    expect(linked.walk).toBe("full");
    expect(summary(linked)).toEqual(["changed /dl/keep/a.txt content"]);
  });

  it("inline text diffs for small text files; binaries say so", async () => {
    const e = byPath(await ok(child, "text=1&path=/d"));
    expect(e["/d/t.txt"]!.diff).toBe("--- a/d/t.txt\n+++ b/d/t.txt\n@@ -1,3 +1,3 @@\n l1\n-l2\n+L2\n l3\n");
    expect(e["/d/added"]!.diff).toBe("--- a/d/added\n+++ b/d/added\n@@ -0,0 +1,1 @@\n+new\n");
    expect(e["/d/gone"]!.diff).toBe("--- a/d/gone\n+++ b/d/gone\n@@ -1,1 +0,0 @@\n-bye\n");
    expect(e["/d/bin"]!.diff_omitted).toBe("binary");
    expect(e["/d/mode"]!.diff).toBeUndefined(); // a mode change has no text
  });

  it("against an image of another lineage: a full walk", async () => {
    const d = await ok(child, `against=${features}&path=/d`);
    expect(d.walk).toBe("full");
    const paths = d.entries.map((x) => x.path);
    expect(paths).toContain("/d/added");
    expect(paths).toContain("/d/keep/a.txt");
    expect(d.entries[0]).toMatchObject({ path: "/d", status: "added", new: { type: "dir" } });
    expect(d.entries.every((x) => x.status === "added")).toBe(true);
    // the same files, compared the other way round, say the opposite
    const rev = await ok(features, `against=${child}&path=/d`);
    expect(rev.entries.map((x) => x.path)).toEqual(paths);
    expect(rev.entries.every((x) => x.status === "removed")).toBe(true);
  });

  it(`against a descendant ${DEEP} runs deep (its chain flattened)`, async () => {
    const d = await ok(deep, `against=${child}`);
    expect(d.walk).toBe("full"); // the flattened chain no longer holds the child's layers
    const files = Array.from({ length: DEEP }, (_, i) => `/deep/f${i}`).sort();
    expect(d.entries.map((x) => x.path)).toEqual(["/deep", ...files]);
    expect(d.entries.every((x) => x.status === "added")).toBe(true);
    const back = await ok(child, `against=${deep}&path=/deep`);
    expect(back.entries.map((x) => `${x.status} ${x.path}`)).toEqual([
      "removed /deep",
      ...files.map((f) => `removed ${f}`),
    ]);
    const parent = await ok(deep);
    expect(parent.entries.map((x) => x.path)).toEqual([`/deep/f${DEEP - 1}`]);
  });

  it("limit cuts the stream and says so", async () => {
    const d = await ok(child, "path=/d&limit=2");
    expect(d.entries).toHaveLength(2);
    expect(d.truncated).toBe(true);
    expect(d.truncated_reason).toBe("limit");
  });

  it("an image without a parent needs `against`; itself is no change", async () => {
    const r = await diff(busybox);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: expect.stringMatching(/no parent.*against/), status: 400 });
    const self = await ok(busybox, `against=${busybox}`);
    expect(self).toMatchObject({ entries: [], truncated: false, walk: "layers" });
  });

  it("another project's images are 404; without `list` 403", async () => {
    expect((await diff(child, "", otherToken)).status).toBe(404);
    const store = t.server.store;
    const other = (await store.projects.findByName("other-team"))!;
    const foreign = await importImage(t, registry!, FIXTURE_IMAGES.busybox, undefined, {
      project: other.name,
    });
    expect((await diff(child, `against=${foreign}`)).status).toBe(404);
    expect((await diff(foreign, `against=${child}`, otherToken)).status).toBe(404);
    expect((await diff(child, "", noListToken)).status).toBe(403);
  });

  it("hostile parameters: clear 400s", async () => {
    const bad: Array<[string, RegExp]> = [
      ["against=not-a-uuid", /against must be an image UUID/],
      ["path=/d/../etc", /must not contain '\.\.'/],
      ["path=../../etc", /must not contain '\.\.'/],
      ["path=/d%00x", /NUL/],
      ["limit=1000000", /limit/],
      ["limit=0", /limit/],
      ["limit=abc", /limit/],
      [`path=${"a/".repeat(3000)}`, /path/],
    ];
    for (const [q, msg] of bad) {
      const r = await diff(child, q);
      expect(r.status, q).toBe(400);
      expect((r.body as { error: string }).error, q).toMatch(msg);
    }
    expect((await diff("not-a-uuid")).status).toBe(404);
    expect((await diff(child, `against=${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}`)).status).toBe(404);
  });
});

function pathOrder(a: string, b: string): number {
  const pa = a.split(" ")[1]!;
  const pb = b.split(" ")[1]!;
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}
