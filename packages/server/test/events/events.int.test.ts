/**
 * `GET /v1/operations/{id}/events` against real runs (contree-api.md §2.6): replay and follow,
 * resume cursors, the spid filter, gzip, keepalives, many and slow followers, cancellation and
 * imports. Timing is measured and printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OperationEventT } from "../contracts/client-models.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { type EventsQuery, openEvents, outputOf, type SseStream } from "./sse-client.js";

const FRAME = /^id: (\d+)\nevent: ([a-z_]+)\ndata: (\{.*\})$/;

/** ids exactly from..from+n-1, each once. */
function expectContiguous(events: OperationEventT[], from = 0): void {
  expect(events.map((e) => e.id)).toEqual(events.map((_, i) => from + i));
}

describe("operation event streams", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  const streams: SseStream[] = [];

  const open = async (id: string, q: EventsQuery = {}) => {
    const s = await openEvents({ url: t.url, token: t.token, prefix: t.config.pathPrefix }, id, q);
    streams.push(s);
    expect(s.status).toBe(200);
    return s;
  };
  const spawn = async (body: Record<string, unknown>): Promise<string> => {
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: { image: "tag:busybox:latest", disposable: true, ...body },
    });
    const j = (await r.json()) as { uuid: string; error?: string };
    expect(r.status, j.error).toBe(202);
    return j.uuid;
  };
  const status = async (id: string) =>
    ((await (await t.api(`/v1/operations/${id}`)).json()) as { status: string }).status;
  const noViolations = (s: SseStream) => expect(s.parser.violations).toEqual([]);

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    ({ registry: reg } = await importBusybox(t));
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    await t?.close();
    await reg?.stop();
  });

  it("replay without follow: frame format, ids from 0 strictly increasing, closes, ends with completion", async () => {
    const id = await spawn({ command: "echo out; echo err >&2", shell: true });
    await waitOperation(t, id);
    const s = await open(id);
    expect(s.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(s.headers["cache-control"]).toBe("no-cache");
    expect(s.headers["content-encoding"]).toBeUndefined();
    const events = await s.done();
    noViolations(s);
    for (const { item } of s.items) {
      if (item.kind !== "event") continue;
      const m = FRAME.exec(item.raw);
      expect(m, item.raw).not.toBeNull();
      const env = JSON.parse(m?.[3] ?? "{}") as Record<string, unknown>;
      expect(Object.keys(env).sort()).toEqual(["data", "id", "spid", "ts", "type"]);
      expect(String(env["id"])).toBe(m?.[1]);
      expect(env["type"]).toBe(m?.[2]);
    }
    expectContiguous(events);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe("init");
    expect(types.at(-1)).toBe("completion");
    for (const [a, b] of [
      ["init", "spawn"],
      ["spawn", "stdout"],
      ["stdout", "exit"],
      ["exit", "shutdown"],
      ["shutdown", "completion"],
    ]) {
      expect(types.indexOf(a as string)).toBeLessThan(types.indexOf(b as string));
    }
    expect(events.find((e) => e.type === "spawn")?.spid).toBe(1);
    expect(events.at(-1)?.data).toMatchObject({ status: "SUCCESS" });
    expect(outputOf(events, "stdout")).toBe("out\n");
    expect(outputOf(events, "stderr")).toBe("err\n");
    // a second replay is identical
    expect(await (await open(id)).done()).toEqual(events);
  });

  it("follow: replay then live; a chunk arrives while the process still runs; closes right after completion", async () => {
    // busybox date may lack %N: then the process prints seconds and only receipt vs event ts is shown
    const id = await spawn({ command: "date +%s%N; echo first; sleep 2; echo second", shell: true });
    const s = await open(id, { follow: true });
    await s.until((x) => outputOf(x.events(), "stdout").includes("first"));
    const got = s.items.find((i) => i.item.kind === "event" && i.item.event.type === "stdout");
    // live: the process has not exited when its first line is here (it sleeps 2 s after it)
    expect(s.events().some((e) => e.type === "exit")).toBe(false);
    expect(["ASSIGNED", "EXECUTING"]).toContain(await status(id));
    const events = await s.done();
    noViolations(s);
    expectContiguous(events);
    expect(events.at(-1)?.type).toBe("completion");
    expect(outputOf(events, "stdout")).toMatch(/first\nsecond\n$/);
    const firstLine = outputOf(events, "stdout").split("\n")[0] ?? "";
    if (got?.item.kind === "event") {
      const serverTs = Date.parse(got.item.event.ts);
      const wrote = /^\d{19}$/.test(firstLine) ? Number(BigInt(firstLine) / 1_000_000n) : undefined;
      console.log(
        `[events] live chunk: server capture → client ${got.at - serverTs} ms` +
          (wrote === undefined
            ? " (no %N in busybox date)"
            : `; process write → client ${got.at - wrote} ms`),
      );
    }
  });

  it("since and Last-Event-Id are exclusive cursors (replay and follow); past the end closes", async () => {
    const id = await spawn({ command: "for i in 1 2 3 4; do echo $i; done", shell: true });
    await waitOperation(t, id);
    const all = await (await open(id)).done();
    const last = all.at(-1)?.id as number;
    for (const cursor of [-1, 0, 2, last - 1]) {
      const bySince = await (await open(id, { since: cursor })).done();
      expect(bySince).toEqual(all.filter((e) => e.id > cursor));
      const byHeader = await (await open(id, { lastEventId: cursor, follow: true })).done();
      expect(byHeader).toEqual(all.filter((e) => e.id > cursor));
    }
    // resuming after the completion of a finished operation: nothing more will come, so it closes
    expect(await (await open(id, { since: last })).done()).toEqual([]);
    expect(await (await open(id, { since: last, follow: true })).done(30_000)).toEqual([]);
    expect(await (await open(id, { lastEventId: last + 100, follow: true })).done(30_000)).toEqual([]);
    // bad cursors are a 400, not a stream
    const bad = await t.api(`/v1/operations/${id}/events?since=abc`);
    expect(bad.status).toBe(400);
  });

  it("spid filter: only that process's events, still ending with completion (replay and follow)", async () => {
    const id = await spawn({ command: "echo a; echo b >&2", shell: true });
    const follow = await open(id, { follow: true, spid: 1 });
    const replayed = await (await open(id, { spid: 1 })).done(); // whatever exists so far
    const events = await follow.done();
    await waitOperation(t, id);
    noViolations(follow);
    expect(events.at(-1)?.type).toBe("completion");
    expect(events.slice(0, -1).every((e) => e.spid === 1)).toBe(true);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["spawn", "stdout", "stderr", "exit"]));
    for (const e of replayed.filter((x) => x.type !== "completion")) expect(e.spid).toBe(1);
    const service = await (await open(id, { spid: 0 })).done();
    expect(service.map((e) => e.type)).toEqual(expect.arrayContaining(["init", "shutdown", "completion"]));
    expect(service.every((e) => e.spid === 0)).toBe(true);
    const none = await (await open(id, { spid: 7 })).done();
    expect(none.map((e) => e.type)).toEqual(["completion"]);
  });

  it("gzip only when asked, sync-flushed so a live frame decodes before the process exits", async () => {
    const id = await spawn({ command: "echo zipped; sleep 2; echo end", shell: true });
    const z = await open(id, { follow: true, gzip: true });
    expect(z.headers["content-encoding"]).toBe("gzip");
    await z.until((x) => outputOf(x.events(), "stdout").includes("zipped"));
    expect(z.events().some((e) => e.type === "exit")).toBe(false);
    const zipped = await z.done();
    noViolations(z);
    const plain = await open(id);
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(await plain.done()).toEqual(zipped);
    const refused = await openEvents({ url: t.url, token: t.token, prefix: t.config.pathPrefix }, id, {
      raw: "",
    });
    streams.push(refused);
    expect(refused.headers["content-encoding"]).toBeUndefined();
    const q0 = await fetch(`${t.url}${t.config.pathPrefix}/v1/operations/${id}/events`, {
      headers: { authorization: `Bearer ${t.token}`, "accept-encoding": "gzip;q=0" },
    });
    expect(q0.headers.get("content-encoding")).toBeNull();
    await q0.text();
  });

  it("a known operation never answers 404/410/425: streams open at once while PENDING, unknown ids are 404", async () => {
    const id = await spawn({ command: "sleep", args: ["1"] });
    // straight after the POST, whatever the state
    const early = await open(id);
    await early.done();
    const follow = await open(id, { follow: true });
    const events = await follow.done();
    expect(events.at(-1)?.type).toBe("completion");
    const unknown = await t.api("/v1/operations/00000000-0000-4000-8000-000000000000/events");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { status: number }).status).toBe(404);
    expect((await t.api("/v1/operations/not-a-uuid/events")).status).toBe(404);
  });

  it("sends keepalive comments while idle", { timeout: 120_000 }, async () => {
    const id = await spawn({ command: "sleep", args: ["40"], timeout: 60 });
    const s = await open(id, { follow: true });
    const t0 = Date.now();
    await s.until((x) => x.comments().length > 0, 60_000);
    console.log(`[events] first keepalive after ${Date.now() - t0} ms idle`);
    expect(s.comments()[0]).toMatch(/keepalive/);
    await t.api(`/v1/operations/${id}`, { method: "DELETE" });
    const events = await s.done();
    expect(events.at(-1)?.data["status"]).toBe("CANCELLED");
  });

  it("twenty followers of one run receive identical sequences", async () => {
    const id = await spawn({
      command: "for i in $(seq 1 30); do echo line $i; echo e$i >&2; sleep 0.05; done",
      shell: true,
    });
    const followers: SseStream[] = [];
    for (let i = 0; i < 20; i++) {
      followers.push(await open(id, { follow: true, gzip: i % 2 === 0 }));
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 150)); // some join mid-run
    }
    const all = await Promise.all(followers.map((f) => f.done()));
    const ref = all[0] as OperationEventT[];
    expectContiguous(ref);
    expect(ref.at(-1)?.type).toBe("completion");
    for (const [i, evs] of all.entries()) {
      noViolations(followers[i] as SseStream);
      expect(evs).toEqual(ref);
    }
    expect(outputOf(ref, "stdout")).toBe(Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(""));
  });

  it("a paused (slow) follower of a chatty run keeps memory flat and gets a gap-free, duplicate-free sequence", {
    timeout: 300_000,
  }, async () => {
    const N = 1_500_000;
    // ~11 MB in 64 KiB events: far more than a follower may hold in its live buffer
    const id = await spawn({
      command: "seq",
      args: ["1", String(N)],
      truncate_output_at: 16 * 1024 * 1024,
      timeout: 300,
    });
    const slow = await open(id, { follow: true });
    await slow.until((x) => x.events().some((e) => e.type === "stdout"));
    slow.pause();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    try {
      await waitOperation(t, id, 240_000);
    } finally {
      clearInterval(sampler);
    }
    const received = slow.events().length;
    slow.resume();
    const events = await slow.done();
    noViolations(slow);
    const full = await (await open(id)).done();
    console.log(
      `[events] slow follower: ${full.length} events, ${received} before pausing took effect; rss growth while paused ${((peak - rss0) / 1048576).toFixed(1)} MiB`,
    );
    expect(full.length).toBeGreaterThan(100);
    expectContiguous(events);
    expect(events).toEqual(full);
    expect(outputOf(events, "stdout")).toBe(Array.from({ length: N }, (_, i) => `${i + 1}\n`).join(""));
    // generous: the server holds at most a bounded live buffer per follower
    expect(peak - rss0).toBeLessThan(200 * 1024 * 1024);
  });

  it("disconnect and resume with Last-Event-Id delivers everything exactly once", async () => {
    const id = await spawn({ command: "for i in $(seq 1 20); do echo n$i; sleep 0.05; done", shell: true });
    const seen: OperationEventT[] = [];
    let cursor: number | undefined;
    for (let round = 0; round < 50; round++) {
      const s = await open(id, { follow: true, ...(cursor === undefined ? {} : { lastEventId: cursor }) });
      // take a few events, then drop the connection mid-stream
      await s.until((x) => x.events().length >= 3 || x.ended).catch(() => undefined);
      const got = s.events();
      s.close();
      seen.push(...got);
      if (got.length > 0) cursor = got.at(-1)?.id;
      if (got.some((e) => e.type === "completion")) break;
    }
    expectContiguous(seen);
    expect(seen.at(-1)?.type).toBe("completion");
    const full = await (await open(id)).done();
    expect(seen).toEqual(full);
  });

  it("a follow resumed past the last event answers at once, before any frame or keepalive", async () => {
    const id = await spawn({
      command: "echo a; while [ ! -e /tmp/gate ]; do sleep 0.05; done; echo b",
      shell: true,
    });
    const first = await open(id, { follow: true });
    await first.until((x) => outputOf(x.events(), "stdout").includes("a"));
    first.close();
    const lastId = Math.max(...first.events().map((e) => e.id));
    // Nothing new exists past lastId until the gate opens, which happens only once the headers are in.
    const resumed = await open(id, { follow: true, lastEventId: lastId });
    const r = await t.api(`/v1/operations/${id}/subprocesses`, {
      method: "POST",
      json: { command: "touch /tmp/gate", shell: true },
    });
    expect(r.status).toBe(201);
    await resumed.until((x) => outputOf(x.events(), "stdout").includes("b"));
    // Headers held back until the first write would have come with the keepalive comment first.
    expect(resumed.items[0]?.item.kind).toBe("event");
    expect(resumed.events()[0]?.id).toBe(lastId + 1);
    await resumed.done();
  });

  it("import operations log progress and end with completion carrying the image", async () => {
    const ops = (await (await t.api("/v1/operations?kind=image_import")).json()) as Array<{
      uuid: string;
      result_image_uuid: string;
    }>;
    const imp = ops[0];
    expect(imp).toBeDefined();
    const events = await (await open(imp?.uuid as string)).done();
    expectContiguous(events);
    expect(events.some((e) => e.type === "progress")).toBe(true);
    // Byte progress (the web console's bar): the resolved total is the sum of the layer sizes.
    const progress = events
      .filter((e) => e.type === "progress")
      .map((e) => e.data as Record<string, unknown>);
    const resolved = progress.find((d) => d["stage"] === "resolved");
    const layers = progress.filter((d) => d["stage"] === "layer");
    expect(layers.length).toBe(resolved?.["layers"]);
    expect(resolved?.["total_bytes"]).toBe(layers.reduce((n, d) => n + Number(d["size"]), 0));
    expect(resolved?.["total_bytes"]).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({
      type: "completion",
      data: { status: "SUCCESS", result_image_uuid: imp?.result_image_uuid },
    });
  });

  it("more follows than the per-token heavy limit, on running instances with large stdin, all succeed", {
    timeout: 120_000,
  }, async () => {
    // > 64 KiB of stdin is stored as `1.input`, so each run has stored output from its start.
    const n = t.config.heavyRequests.perToken + 1;
    const stdin = "x".repeat(100 * 1024);
    const ids: string[] = [];
    for (let i = 0; i < n; i++)
      ids.push(
        await spawn({ command: "cat >/dev/null; echo started; sleep 30", shell: true, stdin, timeout: 60 }),
      );
    // Every follow stays open (its run sleeps) while the next ones open: none may be refused.
    const follows: SseStream[] = [];
    for (const id of ids) follows.push(await open(id, { follow: true }));
    for (const [i, id] of ids.entries()) {
      await (follows[i] as SseStream).until((x) => outputOf(x.events(), "stdout").includes("started"));
      expect((await t.api(`/v1/operations/${id}`, { method: "DELETE" })).status).toBe(202);
    }
    for (const f of follows) {
      const events = await f.done();
      noViolations(f);
      expect(events.at(-1)).toMatchObject({ type: "completion", data: { status: "CANCELLED" } });
    }
  });

  it("a cancelled operation's follow stream ends with completion CANCELLED", async () => {
    const id = await spawn({ command: "echo started; sleep 30", shell: true, timeout: 60 });
    const s = await open(id, { follow: true });
    await s.until((x) => outputOf(x.events(), "stdout").includes("started"));
    const del = await t.api(`/v1/operations/${id}`, { method: "DELETE" });
    expect(del.status).toBe(202);
    const events = await s.done();
    noViolations(s);
    expectContiguous(events);
    expect(events.at(-1)).toMatchObject({ type: "completion", data: { status: "CANCELLED" } });
    expect(await (await open(id)).done()).toEqual(events);
  });
});
