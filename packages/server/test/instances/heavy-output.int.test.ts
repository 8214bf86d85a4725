/**
 * Issue 10 §2: one tenant must not stall the server for everyone with reads of maximal output.
 * Performed as a tenant with an ordinary token would: a run with the largest output allowed
 * (truncate_output_at at its maximum, both streams full), then many concurrent reads of its
 * operation document and of its event log. Checked: every read that is let in gets the exact
 * bytes; past the per-token and per-project limits the answer is a clear 429; another project's
 * whoami completes while the reads are held open; the metadata database grows by far less than
 * the output. On every driver the server can pick (crun through `oci`, runsc through `gvisor`).
 */
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { type IncomingHttpHeaders, type IncomingMessage, request } from "node:http";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/principal.js";
import { issueToken } from "../../src/auth/tokens.js";
import { MAX_TRUNCATE } from "../../src/instances/spawn-request.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

const PER_TOKEN = 3;
const PER_PROJECT = 5;
const READERS = 8;
const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];

/** A response whose body is not read until asked: the server cannot finish it meanwhile. */
interface Held {
  status: number;
  headers: IncomingHttpHeaders;
  body(): Promise<Buffer>;
  close(): void;
}

function hold(url: string, path: string, token: string, headers: Record<string, string> = {}): Promise<Held> {
  const u = new URL(`${url}${path}`);
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname,
      port: u.port,
      path: `${u.pathname}${u.search}`,
      agent: false,
      headers: { authorization: `Bearer ${token}`, "accept-encoding": "identity", ...headers },
    });
    req.on("response", (res: IncomingMessage) => {
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: () =>
          new Promise((ok, fail) => {
            const parts: Buffer[] = [];
            res.on("data", (c: Buffer) => parts.push(c));
            res.once("end", () => ok(Buffer.concat(parts)));
            res.once("error", fail);
          }),
        close: () => req.destroy(),
      });
    });
    req.on("error", reject);
    req.end();
  });
}

const decode = (r: { value: string; encoding: string }) =>
  Buffer.from(r.value, r.encoding === "base64" ? "base64" : "utf8");

/** Size of the database file with everything checkpointed into it (the WAL is a fixed-size log). */
async function dbBytes(t: TestServer): Promise<number> {
  await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(t.server.store.db);
  return statSync(join(t.dataDir, "metadata.db")).size;
}

describe.each(["crun", "runc", "runsc"] as const)("heavy output reads (%s)", (runtime) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let tenantA: string;
  let tokenIdA = "";
  let projectA = "";
  let tenantA2: string;
  let tenantB: string;
  let opId = "";
  const data = randomBytes(MAX_TRUNCATE);
  // `seq 1 2500000` prints 18.9 MB: more than the cap, so stdout is cut at MAX_TRUNCATE.
  const seqText = Buffer.from(Array.from({ length: 2_500_000 }, (_, i) => `${i + 1}\n`).join(""), "latin1");
  const held: Held[] = [];

  const api = (token: string, path: string, init: RequestInit & { json?: unknown } = {}) =>
    t.api(path, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
    });

  beforeAll(async () => {
    t = await startTestServer({
      runtime,
      heavyRequests: { perToken: PER_TOKEN, perProject: PER_PROJECT, total: 64 },
    });
    const store = t.server.store;
    const a = await store.projects.create("stall-tenant-a");
    const b = await store.projects.create("stall-tenant-b");
    const issued = await issueToken(store, { projectId: a.id });
    tenantA = issued.secret;
    tokenIdA = issued.record.id;
    projectA = a.id;
    tenantA2 = (await issueToken(store, { projectId: a.id })).secret;
    tenantB = (await issueToken(store, { projectId: b.id })).secret;
    reg = await startRegistry({ seedFrom: (await fixtures()).registryData });
    const imp = await api(tenantA, "/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
    });
    expect(imp.status).toBe(202);
    const impId = ((await imp.json()) as { uuid: string }).uuid;
    for (;;) {
      const doc = (await (await api(tenantA, `/v1/operations/${impId}`)).json()) as {
        status: string;
        error: string;
      };
      if (TERMINAL.includes(doc.status)) {
        expect(doc.status, doc.error).toBe("SUCCESS");
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }, 300_000);

  afterAll(async () => {
    for (const h of held) h.close();
    await t?.close();
    await reg?.stop();
  });

  it("a max-output run keeps its output out of the metadata database", { timeout: 600_000 }, async () => {
    const up = await api(tenantA, "/v1/files", {
      method: "POST",
      body: data,
      headers: { "content-type": "application/octet-stream" },
    });
    expect(up.status).toBeLessThan(300);
    const file = (await up.json()) as { uuid: string };
    const before = await dbBytes(t);
    const spawn = await api(tenantA, "/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        command: "seq 1 2500000; cat /data /data >&2",
        shell: true,
        disposable: true,
        timeout: 600,
        truncate_output_at: MAX_TRUNCATE,
        files: { "/data": { uuid: file.uuid, mode: "0644" } },
      },
    });
    const spawned = (await spawn.json()) as { uuid: string; error?: string };
    expect(spawn.status, spawned.error).toBe(202);
    opId = spawned.uuid;
    for (;;) {
      const r = await api(tenantA, `/v1/operations/${opId}`);
      const doc = (await r.json()) as { status: string; error: string | null };
      expect(r.status).toBe(200);
      if (TERMINAL.includes(doc.status)) {
        expect(doc.status, String(doc.error)).toBe("SUCCESS");
        break;
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    const growth = (await dbBytes(t)) - before;
    console.log(
      `[heavy-output ${runtime}] metadata database grew by ${(growth / 1024).toFixed(0)} KiB for ${(2 * MAX_TRUNCATE) / 1048576} MiB of output`,
    );
    // The output is 32 MiB; the database keeps references and small rows only.
    expect(growth).toBeLessThan(1024 * 1024);
  });

  it("a large stdin (spawn body) is kept out of the database and echoed back exactly", {
    timeout: 300_000,
  }, async () => {
    const binary = randomBytes(300 * 1024);
    const text = "héllo wörld ✓ ".repeat(40_000);
    for (const stdin of [
      { value: binary.toString("base64"), encoding: "base64", bytes: binary },
      { value: text, encoding: "ascii", bytes: Buffer.from(text, "utf8") },
    ]) {
      const before = await dbBytes(t);
      const r = await api(tenantA, "/v1/instances", {
        method: "POST",
        json: {
          image: "tag:busybox:latest",
          command: "cat",
          disposable: true,
          stdin: { value: stdin.value, encoding: stdin.encoding },
        },
      });
      const { uuid } = (await r.json()) as { uuid: string };
      expect(r.status).toBe(202);
      let doc: {
        status: string;
        metadata: {
          stdin: { value: string; encoding: string; close: boolean };
          result: { stdout: { value: string; encoding: string } };
        };
      };
      for (;;) {
        doc = (await (await api(tenantA, `/v1/operations/${uuid}`)).json()) as typeof doc;
        if (TERMINAL.includes(doc.status)) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(doc.status).toBe("SUCCESS");
      expect(doc.metadata.stdin).toEqual({ value: stdin.value, encoding: stdin.encoding, close: true });
      expect(decode(doc.metadata.result.stdout).equals(stdin.bytes)).toBe(true);
      const ev = await hold(t.url, `/v1/operations/${uuid}/events`, tenantA);
      const frames = (await ev.body())
        .toString()
        .split("\n\n")
        .filter((f) => f.startsWith("id: "))
        .map(
          (f) =>
            JSON.parse(f.slice(f.indexOf("data: ") + 6)) as {
              type: string;
              data: { value: string; encoding: string };
            },
        );
      const echoed = Buffer.concat(frames.filter((e) => e.type === "stdin").map((e) => decode(e.data)));
      expect(echoed.equals(stdin.bytes)).toBe(true);
      // Input, echo and output are ~3 × its size; the database keeps references (and 64 KiB inline output).
      expect((await dbBytes(t)) - before).toBeLessThan(stdin.bytes.length / 2);
    }
  });

  it("a large stdin write to a running process is stored apart and echoed exactly", {
    timeout: 300_000,
  }, async () => {
    const bytes = randomBytes(300 * 1024);
    const r = await api(tenantA, "/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        command: "cat",
        disposable: true,
        stdin: { value: "", encoding: "ascii", close: false },
      },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    for (;;) {
      const w = await api(tenantA, `/v1/operations/${uuid}/subprocesses/1/stdin`, {
        method: "POST",
        json: { value: bytes.toString("base64"), encoding: "base64", close: true },
      });
      await w.arrayBuffer();
      if (w.status === 202) break;
      // 425 until the main process has started (the API says: retry after Retry-After)
      expect(w.status).toBe(425);
      await new Promise((res) => setTimeout(res, 100));
    }
    let doc: { status: string; metadata: { result: { stdout: { value: string; encoding: string } } } };
    for (;;) {
      doc = (await (await api(tenantA, `/v1/operations/${uuid}`)).json()) as typeof doc;
      if (TERMINAL.includes(doc.status)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(doc.status).toBe("SUCCESS");
    expect(decode(doc.metadata.result.stdout).equals(bytes)).toBe(true);
    const ev = await hold(t.url, `/v1/operations/${uuid}/events`, tenantA);
    const frames = (await ev.body())
      .toString()
      .split("\n\n")
      .filter((f) => f.startsWith("id: "))
      .map(
        (f) =>
          JSON.parse(f.slice(f.indexOf("data: ") + 6)) as {
            type: string;
            data: { value: string; encoding: string };
          },
      );
    const echoed = frames.filter((e) => e.type === "stdin");
    expect(echoed.length).toBeGreaterThan(1);
    expect(Buffer.concat(echoed.map((e) => decode(e.data))).equals(bytes)).toBe(true);
  });

  it("stdin fed to one operation is capped: past the cap the write is refused (413) and nothing reaches the process", {
    timeout: 300_000,
  }, async () => {
    const r = await api(tenantA, "/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        command: "wc -c",
        shell: true,
        disposable: true,
        stdin: { value: "", encoding: "ascii", close: false },
      },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    const write = async (value: string, close = false) => {
      for (;;) {
        const w = await api(tenantA, `/v1/operations/${uuid}/subprocesses/1/stdin`, {
          method: "POST",
          json: { value, encoding: "ascii", close },
        });
        const body = (await w.json().catch(() => ({}))) as { error?: string };
        // 425 until the main process has started (the API says: retry after Retry-After)
        if (w.status !== 425) return { status: w.status, error: body.error ?? "" };
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    const big = "x".repeat(15 * 1024 * 1024);
    for (let i = 0; i < 4; i++) expect((await write(big)).status).toBe(202);
    // 60 MiB taken: 15 more would pass the 64 MiB cap, 4 more reach it exactly, then not a byte more.
    const over = await write(big);
    expect(over.status).toBe(413);
    expect(over.error).toMatch(/stdin of this operation would exceed its limit/);
    expect((await write("y".repeat(4 * 1024 * 1024))).status).toBe(202);
    expect((await write("z")).status).toBe(413);
    expect((await write("", true)).status).toBe(202);
    let doc: { status: string; metadata: { result: { stdout: { value: string; encoding: string } } } };
    for (;;) {
      doc = (await (await api(tenantA, `/v1/operations/${uuid}`)).json()) as typeof doc;
      if (TERMINAL.includes(doc.status)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(doc.status).toBe("SUCCESS");
    expect(decode(doc.metadata.result.stdout).toString().trim()).toBe(String(64 * 1024 * 1024));
  });

  it("a directory of many entries is listed in pieces (JSON and text) with every entry", {
    timeout: 300_000,
  }, async () => {
    const r = await api(tenantA, "/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        command: "mkdir /many && cd /many && seq 1 5000 | xargs touch",
        shell: true,
      },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    let doc: { status: string; result_image_uuid: string | null };
    for (;;) {
      doc = (await (await api(tenantA, `/v1/operations/${uuid}`)).json()) as typeof doc;
      if (TERMINAL.includes(doc.status)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(doc.status).toBe("SUCCESS");
    const list = await api(tenantA, `/v1/inspect/${doc.result_image_uuid}/list?path=/many`);
    expect(list.status).toBe(200);
    expect(list.headers.get("content-type")).toMatch(/^application\/json/);
    const listing = (await list.json()) as {
      path: string;
      files: Array<{ path: string; is_regular: boolean }>;
    };
    expect(listing.path).toBe("/many");
    expect(new Set(listing.files.map((f) => f.path))).toEqual(
      new Set(Array.from({ length: 5000 }, (_, i) => String(i + 1))),
    );
    expect(listing.files.every((f) => f.is_regular)).toBe(true);
    const text = await (
      await api(tenantA, `/v1/inspect/${doc.result_image_uuid}/list?path=/many&text=1`)
    ).text();
    const rows = text.split("\n").filter((l) => l !== "");
    expect(rows[0]).toMatch(/^total /);
    expect(rows.length).toBe(5001);
    // Aligned columns: every row's text before the name has the same length.
    const prefix = (l: string) => l.length - (l.split(" ").at(-1)?.length ?? 0);
    expect(new Set(rows.slice(1).map(prefix)).size).toBe(1);
  });

  it("concurrent operation reads: exact bytes for those let in, 429 past the limits, other tenants unaffected", {
    timeout: 600_000,
  }, async () => {
    expect(opId).not.toBe("");
    const path = `/v1/operations/${opId}`;
    const first = await Promise.all(Array.from({ length: READERS }, () => hold(t.url, path, tenantA)));
    held.push(...first);
    const ok = first.filter((h) => h.status === 200);
    const refused = first.filter((h) => h.status === 429);
    expect(ok.length).toBe(PER_TOKEN);
    expect(refused.length).toBe(READERS - PER_TOKEN);
    for (const h of refused) {
      expect(h.headers["retry-after"]).toBe("1");
      const body = JSON.parse((await h.body()).toString()) as { error: string; status: number };
      expect(body.status).toBe(429);
      expect(body.error).toMatch(/too many heavy requests.*token/);
    }
    // A second token of the same project has its own token budget but shares the project's.
    const second = await Promise.all(Array.from({ length: READERS }, () => hold(t.url, path, tenantA2)));
    held.push(...second);
    expect(second.filter((h) => h.status === 200).length).toBe(PER_PROJECT - PER_TOKEN);
    const projectRefused = second.filter((h) => h.status === 429);
    expect(projectRefused.length).toBe(READERS - (PER_PROJECT - PER_TOKEN));
    expect(JSON.parse((await projectRefused[0]?.body())?.toString() ?? "{}")).toMatchObject({ status: 429 });

    // While the reads are held open (their clients read nothing), another project is served.
    const who = await api(tenantB, "/v1/whoami");
    expect(who.status).toBe(200);
    expect(((await who.json()) as { project: string }).project).toBe("stall-tenant-b");

    const docs = await Promise.all([...ok, ...second.filter((h) => h.status === 200)].map((h) => h.body()));
    for (const raw of docs) {
      const doc = JSON.parse(raw.toString()) as {
        status: string;
        metadata: {
          result: {
            state: { exit_code: number };
            stdout: { value: string; encoding: string; truncated: boolean };
            stderr: { value: string; encoding: string; truncated: boolean };
          };
        };
      };
      const res = doc.metadata.result;
      expect(res.state.exit_code).toBe(0);
      expect(res.stdout.encoding).toBe("ascii");
      expect(res.stdout.truncated).toBe(true);
      expect(decode(res.stdout).equals(seqText.subarray(0, MAX_TRUNCATE))).toBe(true);
      expect(res.stderr.encoding).toBe("base64");
      expect(res.stderr.truncated).toBe(true);
      expect(decode(res.stderr).equals(data)).toBe(true);
    }
    // Every slot is free again once the responses are finished.
    const again = await hold(t.url, path, tenantA, { "accept-encoding": "gzip" });
    held.push(again);
    expect(again.status).toBe(200);
    expect(again.headers["content-encoding"]).toBe("gzip");
    again.close();
  });

  it("concurrent event replays: exact bytes for those let in, 429 past the limit", {
    timeout: 600_000,
  }, async () => {
    expect(opId).not.toBe("");
    // The previous test's last reader was closed: its slot goes once the server sees the socket close.
    const a = { token: { id: tokenIdA }, project: { id: projectA } } as Principal;
    while (t.server.heavy.inFlight(a).project > 0) await new Promise((res) => setTimeout(res, 10));
    const path = `/v1/operations/${opId}/events`;
    const reads = await Promise.all(
      Array.from({ length: READERS }, () => hold(t.url, path, tenantA, { accept: "text/event-stream" })),
    );
    held.push(...reads);
    const ok = reads.filter((h) => h.status === 200);
    expect(ok.length).toBe(PER_TOKEN);
    expect(reads.filter((h) => h.status === 429).length).toBe(READERS - PER_TOKEN);

    const who = await api(tenantB, "/v1/whoami");
    expect(who.status).toBe(200);

    for (const text of await Promise.all(ok.map(async (h) => (await h.body()).toString()))) {
      const events = text
        .split("\n\n")
        .filter((f) => f.startsWith("id: "))
        .map(
          (f) =>
            JSON.parse(f.slice(f.indexOf("data: ") + 6)) as {
              type: string;
              spid: number;
              data: { value: string; encoding: string };
            },
        );
      const out = (type: string) =>
        Buffer.concat(events.filter((e) => e.type === type && e.spid === 1).map((e) => decode(e.data)));
      expect(events.at(-1)?.type).toBe("completion");
      expect(out("stdout").equals(seqText.subarray(0, MAX_TRUNCATE))).toBe(true);
      expect(out("stderr").equals(data)).toBe(true);
    }
  });
});
