import { getEventListeners } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stub, sendJson, sseFrame, startStub } from "../test/http-stub.js";
import { ContreeClient } from "./client.js";
import { isAbort, isOperationFailed, isTimeout } from "./errors.js";
import type { OperationEvent } from "./types.js";

const OP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const IMG = "11111111-2222-3333-4444-555555555555";

const doc = (status: string) => ({
  uuid: OP,
  kind: "instance",
  status,
  error: status === "FAILED" ? "oom" : null,
  created_at: "2026-01-01T00:00:00.000000Z",
  duration: 1,
  image_uuid: IMG,
  result_image_uuid: status === "SUCCESS" ? IMG : null,
  metadata: {
    command: "x",
    image: IMG,
    result: {
      state: { exit_code: 0, signal: -1, pid: 1, timed_out: false },
      stdout: { value: "ok", encoding: "ascii" },
      stderr: { value: "", encoding: "ascii" },
    },
  },
  result: { image: status === "SUCCESS" ? IMG : null, tag: null },
});

const ev = (id: number, type: string, data: Record<string, unknown> = {}, spid = 1) => ({
  id,
  ts: "t",
  spid,
  type,
  data,
});

describe("event stream edge cases", () => {
  let stub: Stub;
  let mode = "";
  let polls = 0;
  let deletes = 0;
  beforeAll(async () => {
    stub = await startStub(async (req, res) => {
      if (req.method === "DELETE") {
        deletes++;
        res.writeHead(202);
        return res.end();
      }
      if (req.path.endsWith("/events")) {
        const last = Number(req.headers["last-event-id"] ?? -1);
        if (mode === "no-events") return sendJson(res, 404, { error: "no events here", status: 404 });
        res.writeHead(200, { "content-type": "text/event-stream" });
        if (mode === "sse-error" && last < 0) {
          res.write(sseFrame(ev(0, "spawn")));
          res.write("event: sse_error\ndata: backend hiccup\n\n");
          return res.end();
        }
        if (mode === "hang") {
          res.write(": keepalive\n\n");
          return; // never completes
        }
        const all = [
          ev(0, "spawn"),
          ev(1, "stdout", { value: "ok", encoding: "ascii" }),
          ev(2, "exit"),
          ev(3, "completion", { status: mode === "failed" ? "FAILED" : "SUCCESS", duration_ms: 1 }, 0),
        ];
        for (const e of all) if (e.id > last) res.write(sseFrame(e));
        return res.end();
      }
      polls++;
      if (mode === "no-events") return sendJson(res, 200, doc(polls < 3 ? "EXECUTING" : "SUCCESS"));
      return sendJson(res, 200, doc(mode === "failed" ? "FAILED" : "SUCCESS"));
    });
  });
  afterAll(() => stub.close());

  const client = () =>
    new ContreeClient({ url: stub.url, token: "T", env: {}, retry: { initialDelayMs: 5 } });

  it("reconnects after an in-band sse_error and continues after the last id", async () => {
    mode = "sse-error";
    const events: OperationEvent[] = [];
    for await (const e of client().operations.handle(OP, "instance", IMG).events()) events.push(e);
    expect(events.map((e) => e.id)).toEqual([0, 1, 2, 3]);
    const resumed = stub.requests.filter((r) => r.path.endsWith("/events")).at(-1);
    expect(resumed?.headers["last-event-id"]).toBe("0");
    expect(resumed?.query.get("since")).toBe("0");
  });

  it("falls back to polling when the server has no event stream", async () => {
    mode = "no-events";
    polls = 0;
    const result = await client().operations.handle(OP, "instance", IMG).wait();
    expect(result.stdout).toBe("ok");
    expect(polls).toBe(3);
  });

  it("wait() throws OperationFailedError for FAILED operations, with the document", async () => {
    mode = "failed";
    const err = await client()
      .operations.handle(OP, "instance")
      .wait()
      .catch((e: unknown) => e);
    expect(isOperationFailed(err)).toBe(true);
    expect((err as { operation: { error: string } }).operation.error).toBe("oom");
  });

  it("wait({timeoutMs}) gives TimeoutError and can cancel the operation", async () => {
    mode = "hang";
    deletes = 0;
    const t0 = Date.now();
    const err = await client()
      .operations.handle(OP, "instance")
      .wait({ timeoutMs: 200, cancelOnAbort: true })
      .catch((e: unknown) => e);
    expect(isTimeout(err)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(deletes).toBe(1);
  });

  it("non-follow replay stops at the end of the log", async () => {
    mode = "";
    const events: OperationEvent[] = [];
    for await (const e of client().operations.handle(OP, "instance").events({ follow: false, since: 1 }))
      events.push(e);
    expect(events.map((e) => e.id)).toEqual([2, 3]);
    const req = stub.requests.filter((r) => r.path.endsWith("/events")).at(-1);
    expect(req?.query.has("follow")).toBe(false);
  });

  it("leaves no abort listeners on the caller's signal once streams are done", async () => {
    mode = "";
    const ac = new AbortController();
    const c = client();
    for (let i = 0; i < 5; i++) {
      for await (const _ of c.operations.handle(OP, "instance").events({ signal: ac.signal })) {
        // drain
      }
      await c.whoami({ signal: ac.signal }).catch(() => undefined);
    }
    // Consumers that stop early cancel the stream, which also releases the listener.
    for await (const _ of c.operations.handle(OP, "instance").events({ signal: ac.signal })) break;
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });

  it("aborting the caller's signal ends a live stream with AbortError", async () => {
    mode = "hang";
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await (async () => {
      for await (const _ of client().operations.handle(OP, "instance").events({ signal: ac.signal })) {
        // nothing arrives
      }
    })().catch((e: unknown) => e);
    expect(isAbort(err)).toBe(true);
    expect((err as { kind?: string }).kind).toBe("aborted");
  });
});
