import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeContree, startFakeContree } from "../test/fake-contree.js";
import { type FaultProxy, startFaultProxy } from "../test/fault-proxy.js";
import { type Stub, sendJson, startStub } from "../test/http-stub.js";
import { ContreeClient, normalizeRegistryRef } from "./client.js";
import { isConflict, isNotFound } from "./errors.js";
import type { OperationEvent } from "./types.js";

describe("ContreeClient against a fake server", () => {
  let fake: FakeContree;
  let client: ContreeClient;
  beforeAll(async () => {
    fake = await startFakeContree();
    client = new ContreeClient({
      url: fake.url,
      token: "T",
      env: {},
      retry: { initialDelayMs: 5, maxDelayMs: 20 },
    });
  });
  afterAll(() => fake.close());
  afterEach(() => {
    fake.dropEventsAfterFrames = 0;
  });

  it("resolves a tag through the 302 without following it, and loads the record", async () => {
    const img = await client.images.get("tag:busybox:latest");
    expect(img.tagName).toBe("busybox:latest");
    const lookup = fake.stub.requests.filter((r) => r.path === "/v1/inspect/");
    expect(lookup.at(-1)?.query.get("tag")).toBe("busybox:latest");
    expect(await client.images.resolve("busybox:latest")).toBe(img.uuid);
    expect(await client.images.resolve(img.uuid.toUpperCase())).toBe(img.uuid);
    const missing = await client.images.get("tag:nope").catch((e: unknown) => e);
    expect(isNotFound(missing)).toBe(true);
  });

  it("runs, waits through the event stream, and returns output and the result image", async () => {
    fake.script = (cmd) => ({ stdout: `ran ${cmd} ✓\n`, stderr: "warn\n", exitCode: 3 });
    const base = await client.images.get("busybox:latest");
    const op = await base.run("echo hi", { env: { A: "1" }, timeoutSec: 30 });
    const spawn = fake.stub.requests.find((r) => r.path === "/v1/instances");
    expect(JSON.parse(spawn!.body.toString())).toEqual({
      image: base.uuid,
      command: "echo hi",
      shell: true,
      env: { A: "1" },
      timeout: 30,
      truncate_output_at: 65536,
    });
    const result = await op.wait();
    expect(result.status).toBe("SUCCESS");
    expect(result.exitCode).toBe(3);
    expect(result.stdout).toBe("ran echo hi ✓\n");
    expect(result.stderr).toBe("warn\n");
    expect(result.parent?.uuid).toBe(base.uuid);
    expect(result.image?.uuid).toBe(fake.ops.get(op.id)!.resultImage);
    expect(await op.result()).toEqual(await op.result());
  });

  it("streams decoded stdout live, keeping multi-byte characters whole", async () => {
    fake.script = () => ({ stdout: "ααα βββ γγγ\n" });
    const op = await (await client.images.get("busybox:latest")).run(["/bin/echo", "x"]);
    const chunks: string[] = [];
    for await (const c of op.stdout()) chunks.push(c);
    expect(chunks.join("")).toBe("ααα βββ γγγ\n");
    expect(chunks.length).toBeGreaterThan(1);
    const spawn = fake.stub.requests.filter((r) => r.path === "/v1/instances").at(-1);
    expect(JSON.parse(spawn!.body.toString())).toMatchObject({
      command: "/bin/echo",
      args: ["x"],
      shell: false,
    });
  });

  it("resumes a dropped event stream with Last-Event-Id, without losing or duplicating events", async () => {
    fake.script = () => ({ stdout: "0123456789abcdefghijklmnopqrstuvwxyz\n" });
    fake.dropEventsAfterFrames = 3;
    const op = await (await client.images.get("busybox:latest")).run("x");
    const events: OperationEvent[] = [];
    for await (const ev of op.events()) events.push(ev);
    const ids = events.map((e) => e.id);
    expect(ids).toEqual([...Array(ids.length).keys()]);
    expect(events.at(-1)?.type).toBe("completion");
    const reconnects = fake.stub.requests.filter(
      (r) => r.path.endsWith("/events") && r.headers["last-event-id"],
    );
    expect(reconnects.length).toBeGreaterThan(0);
    const text = await op.wait();
    expect(text.stdout).toBe("0123456789abcdefghijklmnopqrstuvwxyz\n");
  });

  it("branches: two runs from one image give two different children", async () => {
    fake.script = (cmd) => ({ stdout: cmd });
    const base = await client.images.get("busybox:latest");
    const [a, b] = await Promise.all([base.runAndWait("echo a"), base.runAndWait("echo b")]);
    expect(a.image?.uuid).not.toBe(b.image?.uuid);
    expect(a.parent?.uuid).toBe(base.uuid);
    expect(b.parent?.uuid).toBe(base.uuid);
    const parent = await a.image!.parent();
    expect(parent?.uuid).toBe(base.uuid);
    expect(await base.parent()).toBeNull();
  });

  it("tags, moves and removes tags", async () => {
    fake.script = () => ({ stdout: "" });
    const base = await client.images.get("busybox:latest");
    const child = (await base.runAndWait("true")).image!;
    const tagged = await child.tag("sdk/test:1");
    expect(tagged.tagName).toBe("sdk/test:1");
    expect((await client.images.get("sdk/test:1")).uuid).toBe(child.uuid);
    const untagged = await child.untag("sdk/test:1");
    expect(untagged.tagName).toBeNull();
    const del = fake.stub.requests.filter((r) => r.method === "DELETE" && r.path.endsWith("/tag")).at(-1);
    expect(del?.query.get("tag")).toBe("sdk/test:1");
  });

  it("imports: the operation id may come from Location only; wait() gives the image", async () => {
    const op = await client.images.import("busybox", { tag: "bb:1", timeout: 60 });
    const req = fake.stub.requests.find((r) => r.path === "/v1/images/import");
    expect(JSON.parse(req!.body.toString())).toEqual({
      registry: { url: "docker://docker.io/library/busybox:latest" },
      tag: "bb:1",
      timeout: 60,
    });
    const image = await op.wait();
    expect(image.uuid).toBe(fake.ops.get(op.id)!.resultImage);
  });

  it("cancel of a finished run is a ConflictError", async () => {
    fake.script = () => ({ stdout: "" });
    const op = await (await client.images.get("busybox:latest")).run("true");
    await op.wait();
    const err = await op.cancel().catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
  });

  it("subprocess handle: write, close, signal, result", async () => {
    fake.script = () => ({ stdout: "long\n" });
    const op = await (await client.images.get("busybox:latest")).run("sleep 1");
    const sp = await op.exec("cat", { keepStdinOpen: true });
    expect(sp.spid).toBe(2);
    await sp.write("hello ");
    await sp.write(new Uint8Array([0xce, 0xb1]));
    await sp.signal("HUP");
    await sp.close();
    const res = await sp.result();
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toBe("hello α");
    const state = fake.ops.get(op.id)!.subprocesses.get(2)!;
    expect(state.signals).toEqual(["HUP"]);
    const start = fake.stub.requests.find((r) => r.path.endsWith("/subprocesses"));
    expect(JSON.parse(start!.body.toString())).toEqual({
      command: "cat",
      shell: true,
      stdin: { value: "", encoding: "ascii", close: false },
      truncate_output_at: 65536,
    });
  });

  it("files.ensure uploads once, then finds the content by hash; run() uploads file content", async () => {
    const before = fake.stub.requests.filter((r) => r.method === "POST" && r.path === "/v1/files").length;
    const a = await client.files.ensure(new TextEncoder().encode("payload"));
    const b = await client.files.ensure(new TextEncoder().encode("payload"));
    expect(a.uuid).toBe(b.uuid);
    expect(a.sha256).toBe("239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5");
    const dir = await mkdtemp(join(tmpdir(), "contree-sdk-files-"));
    try {
      await writeFile(join(dir, "f.txt"), "payload");
      expect((await client.files.ensure({ path: join(dir, "f.txt") })).uuid).toBe(a.uuid);
      // A string is content, never a path.
      expect((await client.files.ensure("payload")).uuid).toBe(a.uuid);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const after = fake.stub.requests.filter((r) => r.method === "POST" && r.path === "/v1/files").length;
    expect(after - before).toBe(1);
    expect(await client.files.exists(a.sha256)).toBe(true);
    expect(await client.files.exists("0".repeat(64))).toBe(false);

    fake.script = () => ({ stdout: "" });
    await (await client.images.get("busybox:latest")).runAndWait("cat /etc/x", {
      files: {
        "/etc/x": { content: new TextEncoder().encode("new file"), mode: 0o600 },
        "/etc/y": { uuid: a.uuid },
      },
    });
    const spawn = fake.stub.requests.filter((r) => r.path === "/v1/instances").at(-1);
    const files = (
      JSON.parse(spawn!.body.toString()) as { files: Record<string, { uuid: string; mode: string }> }
    ).files;
    expect(files["/etc/x"]?.mode).toBe("0600");
    expect(files["/etc/y"]).toEqual({ uuid: a.uuid, mode: "0644" });
  });
});

describe("pagination", () => {
  let stub: Stub;
  const TOTAL = 2345;
  beforeAll(async () => {
    stub = await startStub((req, res) => {
      const limit = Number(req.query.get("limit"));
      const offset = Number(req.query.get("offset"));
      const rows = Array.from({ length: Math.max(0, Math.min(limit, TOTAL - offset)) }, (_, i) => ({
        uuid: `00000000-0000-0000-0000-${String(offset + i).padStart(12, "0")}`,
        tag: null,
        created_at: "2026-01-01T00:00:00.000000Z",
      }));
      sendJson(res, 200, { images: rows });
    });
  });
  afterAll(() => stub.close());

  it("walks all pages of 1000 and stops at the short page", async () => {
    const client = new ContreeClient({ url: stub.url, token: "T", env: {} });
    const all = await client.images.list({ tagged: true }).toArray();
    expect(all).toHaveLength(TOTAL);
    expect(new Set(all.map((i) => i.uuid)).size).toBe(TOTAL);
    const reqs = stub.requests.map((r) => [
      r.query.get("limit"),
      r.query.get("offset"),
      r.query.get("tagged"),
    ]);
    expect(reqs).toEqual([
      ["1000", "0", "1"],
      ["1000", "1000", "1"],
      ["1000", "2000", "1"],
    ]);
  });

  it("honours pageSize and max", async () => {
    stub.requests.length = 0;
    const client = new ContreeClient({ url: stub.url, token: "T", env: {} });
    const some = await client.images.list({}, { pageSize: 100, max: 250 }).toArray();
    expect(some).toHaveLength(250);
    expect(stub.requests).toHaveLength(3);
    const pages: number[] = [];
    for await (const p of client.images.list({}, { pageSize: 2000, max: 1500 }).pages()) pages.push(p.length);
    expect(pages).toEqual([1000, 500]);
  });
});

describe("through the fault proxy", () => {
  let fake: FakeContree;
  let proxy: FaultProxy;
  beforeAll(async () => {
    fake = await startFakeContree();
    proxy = await startFaultProxy(fake.url);
  });
  afterAll(async () => {
    await proxy.stop();
    await fake.close();
  });

  it("survives 503/429 answers and mid-stream drops of the event stream", async () => {
    const client = new ContreeClient({
      url: proxy.url,
      token: "T",
      env: {},
      retry: { initialDelayMs: 5, maxDelayMs: 20 },
    });
    fake.script = () => ({ stdout: "abcdefghijklmnopqrstuvwxyz0123456789\n".repeat(3) });
    proxy.add(
      { kind: "status", status: 503, retryAfter: "0", times: 2, match: { path: "/v1/inspect/" } },
      {
        kind: "status",
        status: 429,
        retryAfter: "0",
        times: 1,
        match: { method: "POST", path: "/v1/instances" },
      },
      { kind: "drop-stream", afterBytes: 700, times: 2, match: { path: /\/events/ } },
    );
    const base = await client.images.get("busybox:latest");
    const result = await base.runAndWait("x");
    expect(result.stdout).toBe("abcdefghijklmnopqrstuvwxyz0123456789\n".repeat(3));
    const faults = proxy.log.filter((e) => e.fault).map((e) => e.fault);
    expect(faults).toEqual(["status", "status", "status", "drop-stream", "drop-stream"]);
    const resumed = proxy.log.filter((e) => e.url.includes("/events") && e.lastEventId !== undefined);
    expect(resumed.length).toBeGreaterThanOrEqual(2);
    expect(fake.stub.requests.filter((r) => r.path === "/v1/instances")).toHaveLength(1);
  });

  it("slow streams still deliver everything in order", async () => {
    proxy.clear();
    proxy.add({ kind: "slow-stream", chunkBytes: 7, delayMs: 1, match: { path: /\/events/ } });
    const client = new ContreeClient({ url: proxy.url, token: "T", env: {} });
    fake.script = () => ({ stdout: "slow but sure\n" });
    const op = await (await client.images.get("busybox:latest")).run("x");
    let text = "";
    for await (const c of op.stdout()) text += c;
    expect(text).toBe("slow but sure\n");
  });

  it("a per-request timeout covers slow headers", async () => {
    proxy.clear();
    proxy.add({ kind: "delay", ms: 1000, match: { path: "/v1/whoami" } });
    const client = new ContreeClient({ url: proxy.url, token: "T", env: {}, retry: false });
    const err = await client.whoami({ timeoutMs: 100 }).catch((e: unknown) => e);
    expect((err as { kind: string }).kind).toBe("timeout");
  });
});

describe("normalizeRegistryRef", () => {
  it("follows the CLI's rules", () => {
    expect(normalizeRegistryRef("busybox")).toBe("docker://docker.io/library/busybox:latest");
    expect(normalizeRegistryRef("python:3.12-slim")).toBe("docker://docker.io/library/python:3.12-slim");
    expect(normalizeRegistryRef("user/app")).toBe("docker://docker.io/user/app:latest");
    expect(normalizeRegistryRef("ghcr.io/o/r:v1")).toBe("docker://ghcr.io/o/r:v1");
    expect(normalizeRegistryRef("localhost:5000/x")).toBe("docker://localhost:5000/x:latest");
    expect(normalizeRegistryRef("r.io/x@sha256:abc")).toBe("docker://r.io/x@sha256:abc");
    expect(normalizeRegistryRef("docker://docker.io/library/ubuntu:22.04")).toBe(
      "docker://docker.io/library/ubuntu:22.04",
    );
  });
});
