// The SDK against the real server (started here, busybox imported from the fixture registry).

import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ContreeClient,
  type ImageHandle,
  isBadRequest,
  isConflict,
  isNotFound,
  isOperationFailed,
  isTimeout,
  isUnauthorized,
  type OperationFailedError,
} from "../src/index.js";
import { type LiveServer, startLiveServer } from "./live-server.js";

const LONG = 240_000;

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream as unknown as AsyncIterable<Uint8Array>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe("SDK against the real server", () => {
  let live: LiveServer;
  let client: ContreeClient;
  /** Every request the recording client sent, as "METHOD /path". */
  const calls: string[] = [];
  let base: ImageHandle;

  beforeAll(async () => {
    live = await startLiveServer();
    client = live.client({
      fetch: (input, init) => {
        calls.push(`${init?.method ?? "GET"} ${new URL(String(input)).pathname}`);
        return fetch(input, init);
      },
    });
    base = client.images.handle(live.busybox);
  }, LONG);
  afterAll(async () => {
    await live?.close();
  }, LONG);

  it("whoami", async () => {
    const me = await client.whoami();
    expect(typeof me.token_uuid).toBe("string");
    expect(me.permissions["spawn"]).toBe(true);
    expect(me.operations_stat).toBeTypeOf("object");
  });

  it("maps 401 and 404", async () => {
    const bad = live.client({ token: "wrong", retry: false });
    expect(isUnauthorized(await bad.whoami().catch((e: unknown) => e))).toBe(true);
    expect(isNotFound(await client.images.get("tag:sdk-e2e/missing").catch((e: unknown) => e))).toBe(true);
  });

  it("images.get by tag, by bare name and by uuid", async () => {
    const got = await client.images.get("tag:busybox:latest");
    expect(got.uuid).toBe(live.busybox);
    expect(got.tagName).toBe("busybox:latest");
    expect(await got.parent()).toBeNull();
    expect((await client.images.get("busybox:latest")).uuid).toBe(live.busybox);
    const byUuid = await client.images.get(live.busybox.toUpperCase());
    expect(byUuid.uuid).toBe(live.busybox);
    expect(byUuid.record?.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it(
    "run → live stdout → wait: exit code, output, a new image whose parent is the base",
    async () => {
      const op = await base.run(
        "touch /marker; for i in 1 2 3; do echo out-$i; sleep 0.1; done; echo err >&2; exit 3",
      );
      let live = "";
      for await (const chunk of op.stdout()) live += chunk;
      const r = await op.wait();
      expect(live).toBe("out-1\nout-2\nout-3\n");
      expect(r.status).toBe("SUCCESS"); // a non-zero exit is a result, not a failure
      expect(r.exitCode).toBe(3);
      expect(r.signal).toBe(-1);
      expect(r.stdout).toBe(live);
      expect(r.stderr).toBe("err\n");
      expect(r.parent?.uuid).toBe(base.uuid);
      expect(r.image).not.toBeNull();
      expect(r.image!.uuid).not.toBe(base.uuid);
      expect((await r.image!.parent())?.uuid).toBe(base.uuid);
      expect(await op.result()).toMatchObject({ exitCode: 3 }); // memoised wait
      const got = await client.operations.get(op.id);
      expect(got.kind).toBe("instance");
    },
    LONG,
  );

  it(
    "image.delete(): refused while tagged (ConflictError), force removes the tags; children keep working",
    async () => {
      const parent = (await base.runAndWait("echo p > /p")).image!;
      const child = (await parent.runAndWait("echo c > /c")).image!;
      await parent.tag("sdk-e2e/delete-me");
      expect(isConflict(await parent.delete().catch((e: unknown) => e))).toBe(true);
      const gone = await parent.delete({ force: true });
      expect(gone).toMatchObject({ uuid: parent.uuid, deleted: true, tags_removed: ["sdk-e2e/delete-me"] });
      expect(isNotFound(await parent.ls("/").catch((e: unknown) => e))).toBe(true);
      expect(isNotFound(await parent.delete().catch((e: unknown) => e))).toBe(true);
      const again = await child.runAndWait("cat /p /c");
      expect(again.stdout).toBe("p\nc\n");
      const record = await client.api.inspectImage(child.uuid);
      expect(record.parent_deleted).toBe(true);
    },
    LONG,
  );

  it(
    "branching, rollback and the inspect helpers (ls, read, stream, exists, archive, grep)",
    async () => {
      const root = await base.runAndWait("mkdir -p /e2e && echo root > /e2e/f");
      expect(root.exitCode).toBe(0);
      const img = root.image!;
      const [a, b] = await Promise.all([
        img.runAndWait("echo a >> /e2e/f && touch /e2e/only-a"),
        img.runAndWait("echo b >> /e2e/f"),
      ]);
      expect(await a.image!.read("/e2e/f", { as: "text" })).toBe("root\na\n");
      expect(await b.image!.read("/e2e/f", { as: "text" })).toBe("root\nb\n");
      expect(await a.image!.exists("/e2e/only-a")).toBe(true);
      expect(await b.image!.exists("/e2e/only-a")).toBe(false);
      // Rollback: the older images lack what the newer one has.
      expect(await img.exists("/e2e/only-a")).toBe(false);
      expect(await base.exists("/e2e/f")).toBe(false);
      expect(await base.exists("/e2e")).toBe(false);
      expect(await img.exists("/e2e")).toBe(true); // a directory counts
      expect((await img.runAndWait("cat /e2e/f")).stdout).toBe("root\n");

      const names = (await a.image!.ls("/e2e")).map((f) => f.path).sort();
      expect(names).toEqual(["f", "only-a"]);
      const f = (await a.image!.ls("/e2e")).find((x) => x.path === "f")!;
      expect(f).toMatchObject({ is_regular: true, is_dir: false, size: 7 });
      expect(Buffer.from(await a.image!.read("/e2e/f")).toString()).toBe("root\na\n");
      expect((await bytesOf(await a.image!.stream("/e2e/f"))).toString()).toBe("root\na\n");
      expect(isNotFound(await a.image!.read("/e2e/nope").catch((e: unknown) => e))).toBe(true);

      expect(await client.api.headImage(a.image!.uuid)).toBe(true);
      expect(await client.api.headImage("00000000-0000-4000-8000-000000000000")).toBe(false);
      expect(await client.api.headArchive(a.image!.uuid, "/e2e")).toBe(true);
      expect(await client.api.listDirectoryText(a.image!.uuid, "/e2e")).toMatch(/only-a/);

      const tar = await bytesOf(await a.image!.archive("/e2e"));
      const listing = execFileSync("tar", ["-tf", "-"], { input: tar }).toString().split("\n");
      const entry = listing.find((n) => /(^|\/)f$/.test(n));
      expect(entry, listing.join(",")).toBeDefined();
      expect(listing.some((n) => /only-a$/.test(n))).toBe(true);
      expect(execFileSync("tar", ["-xOf", "-", entry!], { input: tar }).toString()).toBe("root\na\n");

      const grep = await a.image!.grep("^a$", { path: "/e2e" });
      expect(grep.matches.map((m) => [m.path, m.line_number, m.line_text.trimEnd()])).toEqual([
        ["/e2e/f", 2, "a"],
      ]);
    },
    LONG,
  );

  it(
    "image.diff: against the parent by default, against any image, with text diffs and a limit",
    async () => {
      const a = await base.runAndWait("mkdir /df && printf 'x\\ny\\n' > /df/t && echo gone > /df/g");
      const b = await a.image!.runAndWait("printf 'x\\nz\\n' > /df/t && rm /df/g && echo n > /df/n");
      const d = await b.image!.diff(undefined, { text: true, path: "/df" });
      expect(d.against).toBe(a.image!.uuid);
      expect(d.walk).toBe("layers");
      expect(d.entries.map((e) => [e.status, e.path, e.changes ?? []])).toEqual([
        ["removed", "/df/g", []],
        ["added", "/df/n", []],
        ["changed", "/df/t", ["content"]],
      ]);
      expect(d.entries[2]!.diff).toBe("--- a/df/t\n+++ b/df/t\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n");
      const fromBase = await b.image!.diff(base, { path: "/df", limit: 2 });
      expect(fromBase.entries.map((e) => `${e.status} ${e.path}`)).toEqual(["added /df", "added /df/n"]);
      expect(fromBase).toMatchObject({ truncated: true, truncated_reason: "limit" });
      expect(isBadRequest(await base.diff().catch((e: unknown) => e))).toBe(true); // no parent
    },
    LONG,
  );

  it(
    "files.ensure hashes locally and uploads only once; runs place files from bytes",
    async () => {
      const data = new TextEncoder().encode(`sdk e2e ${Date.now()} ${Math.random()}\n`);
      const posts = () => calls.filter((c) => c === "POST /v1/files").length;
      const before = posts();
      const a = await client.files.ensure(data);
      expect(posts()).toBe(before + 1);
      const b = await client.files.ensure(data);
      expect(posts()).toBe(before + 1); // found by hash: no second upload
      expect(b).toEqual({ uuid: a.uuid, sha256: a.sha256, size: data.byteLength });
      expect(await client.files.exists(a.sha256)).toBe(true);
      expect((await client.files.get(a.sha256)).uuid).toBe(a.uuid);
      expect(await client.files.exists("0".repeat(64))).toBe(false);

      const r = await base.runAndWait("cat /in/data; stat -c %a /in/run.sh; /in/run.sh", {
        files: {
          "/in/data": data,
          "/in/run.sh": { content: new TextEncoder().encode("#!/bin/sh\necho ran\n"), mode: 0o755 },
        },
      });
      expect(r.stdout).toBe(`${new TextDecoder().decode(data)}755\nran\n`);
      expect(posts()).toBe(before + 2); // the script was new, the data was not
    },
    LONG,
  );

  it(
    "tags: set, resolve, move, list, remove",
    async () => {
      const one = (await base.runAndWait("echo 1 > /v")).image!;
      const two = (await base.runAndWait("echo 2 > /v")).image!;
      const tagged = await one.tag("sdk-e2e/app");
      expect(tagged.tagName).toBe("sdk-e2e/app");
      expect((await client.images.get("tag:sdk-e2e/app")).uuid).toBe(one.uuid);
      await two.tag("sdk-e2e/app"); // moves the tag
      expect(await client.images.resolve("sdk-e2e/app")).toBe(two.uuid);
      expect((await one.info()).tagName).toBeNull();
      const listed = await client.images.list({ tag: "sdk-e2e/" }).toArray();
      expect(listed.map((i) => i.uuid)).toEqual([two.uuid]);
      const untagged = await two.untag("sdk-e2e/app");
      expect(untagged.uuid).toBe(two.uuid);
      expect(isNotFound(await client.images.get("tag:sdk-e2e/app").catch((e: unknown) => e))).toBe(true);
    },
    LONG,
  );

  it(
    "subprocesses: exec into a running sandbox, write stdin, signal, read results; main stdin stays open",
    async () => {
      // The main process reads its stdin until we close it.
      const op = await base.run("cat > /main-in; echo main-done", { keepStdinOpen: true, timeout: 120 });
      const cat = await op.exec("cat", { keepStdinOpen: true }); // retried until the main process runs
      expect(cat.spid).toBeGreaterThanOrEqual(2);
      const running = await cat.state();
      expect(running.state.exit_code).toBe(-1);
      await cat.write("hello ");
      await cat.write(new TextEncoder().encode("world\n"));
      await cat.close();
      const catResult = await cat.result();
      expect(catResult).toMatchObject({ exitCode: 0, signal: -1, stdout: "hello world\n" });

      const sleeper = await op.exec(["sleep", "100"]);
      await sleeper.signal("TERM");
      const slept = await sleeper.result();
      expect(slept.signal).toBe(15);

      const echo = await op.exec("echo sub-out; echo sub-err >&2");
      let out = "";
      for await (const c of echo.stdout()) out += c;
      expect(out).toBe("sub-out\n");
      expect((await echo.result()).stderr).toBe("sub-err\n");

      // Killing a subprocess does not end the run; closing the main stdin does.
      expect((await op.status()).status).toBe("EXECUTING");
      await op.main.write("to main\n");
      await op.main.close();
      const r = await op.wait();
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe("main-done\n");
      expect(await r.image!.read("/main-in", { as: "text" })).toBe("to main\n");
      expect(isConflict(await op.exec("true").catch((e: unknown) => e))).toBe(true); // finished
    },
    LONG,
  );

  it(
    "cancel: a cancelled run fails wait(); cancelling again conflicts; a wait deadline can cancel",
    async () => {
      const op = await base.run("sleep 100");
      for await (const e of op.events()) if (e.type === "spawn") break;
      await op.cancel();
      const err = await op.wait().catch((e: unknown) => e);
      expect(isOperationFailed(err)).toBe(true);
      expect((err as OperationFailedError).operation.status).toBe("CANCELLED");
      expect(isConflict(await op.cancel().catch((e: unknown) => e))).toBe(true);

      const slow = await base.run("sleep 100");
      const timedOut = await slow.wait({ timeoutMs: 1500, cancelOnAbort: true }).catch((e: unknown) => e);
      expect(isTimeout(timedOut)).toBe(true);
      expect((await slow.waitTerminal()).status).toBe("CANCELLED");
    },
    LONG,
  );

  it(
    "pagination: images, operations and files page by page",
    async () => {
      const all = await client.images.list({}, { pageSize: 1000 }).toArray();
      expect(all.length).toBeGreaterThanOrEqual(5);
      const pages: number[] = [];
      for await (const page of client.images.list({}, { pageSize: 2 }).pages()) pages.push(page.length);
      expect(pages.reduce((a, b) => a + b, 0)).toBe(all.length);
      expect(pages.slice(0, -1).every((n) => n === 2)).toBe(true);
      const byPages = await client.images.list({}, { pageSize: 2 }).toArray();
      expect(new Set(byPages.map((i) => i.uuid))).toEqual(new Set(all.map((i) => i.uuid)));

      const ops = await client.operations.list({ kind: "instance" }, { pageSize: 3 }).toArray();
      expect(ops.length).toBeGreaterThanOrEqual(5);
      expect(ops.every((o) => o.kind === "instance")).toBe(true);
      expect(new Set(ops.map((o) => o.uuid)).size).toBe(ops.length);
      const capped = await client.operations.list({}, { pageSize: 2, max: 3 }).toArray();
      expect(capped).toHaveLength(3);
      const cancelled = await client.operations.list({ status: "CANCELLED" }).toArray();
      expect(cancelled.length).toBeGreaterThanOrEqual(1);

      const files = await client.files.list({}, { pageSize: 1 }).toArray();
      expect(files.length).toBeGreaterThanOrEqual(2);
      expect(files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    },
    LONG,
  );
});
