// Fault injection between the SDK and the real server: cut event streams, retried statuses on GETs,
// and POSTs that must never be sent twice.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type ContreeClient,
  type ImageHandle,
  isContreeError,
  isNetworkError,
  isServerError,
  type OperationSummary,
} from "../src/index.js";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.js";
import { type LiveServer, startLiveServer } from "./live-server.js";

const LONG = 240_000;

describe("SDK through a fault proxy in front of the real server", () => {
  let live: LiveServer;
  let proxy: FaultProxy;
  let client: ContreeClient;
  let base: ImageHandle;

  /** Instance operations as the server (not the proxy) sees them. */
  async function serverInstanceOps(): Promise<OperationSummary[]> {
    const r = await live.t.api("/v1/operations?kind=instance&limit=1000");
    expect(r.status).toBe(200);
    return (await r.json()) as OperationSummary[];
  }

  beforeAll(async () => {
    live = await startLiveServer();
    proxy = await startFaultProxy(live.t.url);
    client = live.client({ url: `${proxy.url}${live.t.config.pathPrefix}` });
    base = client.images.handle(live.busybox);
  }, LONG);
  afterAll(async () => {
    await proxy?.stop();
    await live?.close();
  }, LONG);
  beforeEach(() => {
    proxy.clear();
    proxy.log.length = 0;
  });

  it(
    "event streams cut again and again during a run resume with Last-Event-Id: every line once, in order",
    async () => {
      const n = 40;
      const op = await base.run(`i=1; while [ $i -le ${n} ]; do echo line-$i; i=$((i+1)); sleep 0.05; done`);
      // Every events connection is cut after ~700 bytes, mid-frame: a few frames each.
      proxy.add({ kind: "drop-stream", afterBytes: 700, times: 40, match: { path: /\/events/ } });
      let text = "";
      for await (const chunk of op.stdout()) text += chunk;
      const result = await op.wait();

      const expected = Array.from({ length: n }, (_, i) => `line-${i + 1}\n`).join("");
      expect(text).toBe(expected);
      expect(result.stdout).toBe(expected);
      expect(result.exitCode).toBe(0);

      const streams = proxy.log.filter((e) => e.url.includes("/events"));
      const cut = streams.filter((e) => e.fault === "drop-stream");
      expect(cut.length).toBeGreaterThanOrEqual(4);
      const resumed = streams.filter((e) => e.lastEventId !== undefined);
      expect(resumed.length).toBeGreaterThanOrEqual(3);
      // The cuts fell in the middle of the output, not after it.
      proxy.clear();
      const events = [];
      for await (const e of op.events({ follow: false })) events.push(e);
      const exitId = events.find((e) => e.type === "exit" && e.spid === 1)?.id ?? -1;
      const firstLine = events.find((e) => e.type === "stdout")?.id ?? Number.POSITIVE_INFINITY;
      const cursors = resumed.map((e) => Number(e.lastEventId));
      expect(cursors.every((c) => Number.isInteger(c) && c >= 0)).toBe(true);
      expect(cursors.filter((c) => c >= firstLine && c < exitId).length).toBeGreaterThanOrEqual(3);
      expect(
        resumed.every((e) => new URL(e.url, "http://x").searchParams.get("since") === e.lastEventId),
      ).toBe(true);
    },
    LONG,
  );

  it.each([425, 429, 503])(
    "GETs answered %i with Retry-After are retried after the delay",
    async (status) => {
      proxy.add(
        { kind: "status", status, retryAfter: "1", times: 1, match: { method: "GET", path: "/v1/whoami" } },
        {
          kind: "status",
          status,
          retryAfter: "0",
          times: 2,
          match: { method: "GET", path: /^\/v1\/inspect\// },
        },
        {
          kind: "status",
          status,
          retryAfter: "0",
          times: 1,
          match: { method: "GET", path: "/v1/operations" },
        },
      );
      const t0 = Date.now();
      const me = await client.whoami();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
      expect(typeof me.token_uuid).toBe("string");
      expect((await client.images.get("tag:busybox:latest")).uuid).toBe(live.busybox);
      const ops = await client.operations.list({}, { pageSize: 5, max: 5 }).toArray();
      expect(ops.length).toBeGreaterThan(0);
      expect(proxy.log.filter((e) => e.fault === "status")).toHaveLength(4);
      // whoami, the tag lookup, the image's record, its tags, the operations page.
      expect(proxy.log.filter((e) => e.status === 200 || e.status === 302)).toHaveLength(5);
    },
    LONG,
  );

  it("a Retry-After longer than the policy allows fails at once with the delay on the error", async () => {
    proxy.add({ kind: "status", status: 503, retryAfter: "3600", times: 1, match: { path: "/v1/whoami" } });
    const t0 = Date.now();
    const err = await client.whoami().catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(isServerError(err)).toBe(true);
    expect(isContreeError(err) && err.retryAfterMs).toBe(3_600_000);
  });

  it("a GET whose connection is reset is retried; a reset POST is not", async () => {
    proxy.add({ kind: "reset", times: 2, match: { method: "GET", path: "/v1/whoami" } });
    expect(typeof (await client.whoami()).token_uuid).toBe("string");
    expect(proxy.log.filter((e) => e.url === "/v1/whoami")).toHaveLength(3);

    const before = (await serverInstanceOps()).length;
    proxy.add({ kind: "reset", times: 1, match: { method: "POST", path: "/v1/instances" } });
    expect(isNetworkError(await base.run("true").catch((e: unknown) => e))).toBe(true);
    expect(proxy.log.filter((e) => e.method === "POST")).toHaveLength(1);
    expect((await serverInstanceOps()).length).toBe(before);
  });

  it(
    "POST /v1/instances whose 202 is replaced by a 503 is not replayed: exactly one operation exists",
    async () => {
      const before = await serverInstanceOps();
      proxy.add({
        kind: "lose-reply",
        status: 503,
        retryAfter: "0",
        times: 1,
        match: { path: "/v1/instances" },
      });
      const err = await base.run("echo once > /once").catch((e: unknown) => e);
      expect(isServerError(err)).toBe(true);
      const posts = proxy.log.filter((e) => e.method === "POST" && e.url === "/v1/instances");
      expect(posts).toHaveLength(1);
      expect(posts[0]?.upstreamStatus).toBe(202);
      const after = await serverInstanceOps();
      const created = after.filter((o) => !before.some((b) => b.uuid === o.uuid));
      expect(created).toHaveLength(1);
      // The run the server accepted goes on regardless; let it finish before the next test.
      await client.operations.handle(created[0]!.uuid, "instance").waitTerminal();
    },
    LONG,
  );

  it(
    "POST /v1/instances answered 425 or 429 by the proxy (nothing processed) is sent again: one operation",
    async () => {
      const before = (await serverInstanceOps()).length;
      proxy.add(
        { kind: "status", status: 425, retryAfter: "0", times: 1, match: { path: "/v1/instances" } },
        { kind: "status", status: 429, retryAfter: "0", times: 1, match: { path: "/v1/instances" } },
      );
      const r = await base.runAndWait("echo retried");
      expect(r.stdout).toBe("retried\n");
      expect(proxy.log.filter((e) => e.method === "POST" && e.url === "/v1/instances")).toHaveLength(3);
      expect((await serverInstanceOps()).length).toBe(before + 1);
    },
    LONG,
  );
});
