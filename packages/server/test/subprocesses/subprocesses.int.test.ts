/**
 * Extra processes inside a running instance (contree-api.md §2.7): exec, shared filesystem,
 * folded results, signals, stdin of subprocesses and of the main process, their events, and
 * what happens around the parent's end. Every response goes through the client contracts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/tokens.js";
import { type ContractApi, contractApi } from "../contracts/contract-api.js";
import { openEvents, outputOf, type SseStream } from "../events/sse-client.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

type Result = {
  state: { exit_code: number; signal: number; pid: number };
  stdout: { value: string; encoding: string };
  stderr: { value: string; encoding: string };
};
const decode = (s: { value: string; encoding: string }) =>
  s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;
const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];

describe("subprocesses", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let api: ContractApi;
  let otherToken: string;
  const streams: SseStream[] = [];
  const running: string[] = [];

  const body = async <T>(r: Response, status: number): Promise<T> => {
    const text = await r.text();
    expect(r.status, text).toBe(status);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  };
  const events = async (id: string, q: Parameters<typeof openEvents>[2] = {}) => {
    const s = await openEvents({ url: t.url, token: t.token, prefix: t.config.pathPrefix }, id, q);
    streams.push(s);
    return s;
  };
  /** Spawns the main process and waits for its spawn event (subprocesses need a live sandbox). */
  const startMain = async (spec: Record<string, unknown>): Promise<{ id: string; follow: SseStream }> => {
    const { uuid } = await body<{ uuid: string }>(
      await api("/v1/instances", {
        method: "POST",
        json: { image: "tag:busybox:latest", disposable: true, timeout: 120, ...spec },
      }),
      202,
    );
    running.push(uuid);
    const follow = await events(uuid, { follow: true });
    await follow.until((s) => s.events().some((e) => e.type === "spawn" && e.spid === 1));
    return { id: uuid, follow };
  };
  const exec = async (id: string, spec: Record<string, unknown>): Promise<number> =>
    (
      await body<{ spid: number }>(
        await api(`/v1/operations/${id}/subprocesses`, { method: "POST", json: spec }),
        201,
      )
    ).spid;
  const result = async (id: string, spid: number) =>
    body<Result>(await api(`/v1/operations/${id}/subprocesses/${spid}`), 200);
  const waitExit = async (id: string, spid: number): Promise<Result> => {
    for (;;) {
      const r = await result(id, spid);
      if (r.state.exit_code !== -1 || r.state.signal !== -1) return r;
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const stdin = (id: string, spid: number, json: Record<string, unknown>) =>
    api(`/v1/operations/${id}/subprocesses/${spid}/stdin`, { method: "POST", json });
  const waitOp = async (id: string) => {
    for (;;) {
      const doc = await body<{
        status: string;
        metadata: { result: Result | null };
        result: { image: string | null };
      }>(await api(`/v1/operations/${id}`), 200);
      if (TERMINAL.includes(doc.status)) return doc;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    api = contractApi(t);
    ({ registry: reg } = await importBusybox(t));
    const other = await t.server.store.projects.create("subprocess-other");
    otherToken = (await issueToken(t.server.store, { projectId: other.id })).secret;
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    for (const id of running)
      await t?.api(`/v1/operations/${id}`, { method: "DELETE" }).catch(() => undefined);
    await t?.close();
    await reg?.stop();
  });

  it("exec gives spid ≥ 2, shares the filesystem with the main process, and the result image keeps the change", async () => {
    const { id } = await startMain({
      command: "while [ ! -f /tmp/go ]; do sleep 0.1; done; cat /root/shared.txt",
      shell: true,
      disposable: false,
    });
    const a = await exec(id, { command: "echo from-sub > /root/shared.txt", shell: true });
    const b = await exec(id, { command: "cat", args: ["/root/shared.txt"] });
    expect(a).toBeGreaterThanOrEqual(2);
    expect(b).toBeGreaterThan(a);
    expect((await waitExit(id, a)).state.exit_code).toBe(0);
    const rb = await waitExit(id, b);
    // b may have raced a's write; the main process below is the ordering-safe check
    expect([0, 1]).toContain(rb.state.exit_code);
    await exec(id, { command: "touch", args: ["/tmp/go"] });
    const op = await waitOp(id);
    expect(op.status).toBe("SUCCESS");
    expect(decode(op.metadata.result?.stdout as Result["stdout"])).toBe("from-sub\n");
    const image = op.result.image as string;
    expect(image).toBeTruthy();
    expect(await (await api(`/v1/inspect/${image}/download?path=/root/shared.txt`)).text()).toBe(
      "from-sub\n",
    );
  });

  it("folded result: -1/-1 while running, final values after; TERM and KILL end only the subprocess", async () => {
    const { id } = await startMain({ command: "sleep", args: ["60"] });
    const sleeper = await exec(id, { command: "sleep", args: ["30"] });
    const live = await result(id, sleeper);
    expect(live.state).toMatchObject({ exit_code: -1, signal: -1 });
    expect(live.state.pid).toBeGreaterThan(0);
    expect(
      (await api(`/v1/operations/${id}/subprocesses/${sleeper}?signal=TERM`, { method: "DELETE" })).status,
    ).toBe(202);
    expect((await waitExit(id, sleeper)).state).toMatchObject({ exit_code: -1, signal: 15 });
    const sleeper2 = await exec(id, { command: "sleep", args: ["30"] });
    expect(
      (await api(`/v1/operations/${id}/subprocesses/${sleeper2}?signal=KILL`, { method: "DELETE" })).status,
    ).toBe(202);
    expect((await waitExit(id, sleeper2)).state).toMatchObject({ exit_code: -1, signal: 9 });
    // signalling an exited process is a conflict; a bad signal name a 400
    expect(
      (await api(`/v1/operations/${id}/subprocesses/${sleeper2}?signal=KILL`, { method: "DELETE" })).status,
    ).toBe(409);
    expect(
      (await api(`/v1/operations/${id}/subprocesses/${sleeper2}?signal=NOPE`, { method: "DELETE" })).status,
    ).toBe(400);
    const three = await exec(id, { command: "echo out; echo err >&2; exit 3", shell: true });
    const r3 = await waitExit(id, three);
    expect(r3.state).toMatchObject({ exit_code: 3, signal: -1 });
    expect(decode(r3.stdout)).toBe("out\n");
    expect(decode(r3.stderr)).toBe("err\n");
    // the instance goes on
    expect((await body<{ status: string }>(await api(`/v1/operations/${id}`), 200)).status).toBe("EXECUTING");
  });

  it("subprocess stdin: ascii then base64, close; writes after close are refused", async () => {
    const { id } = await startMain({ command: "sleep", args: ["60"] });
    const cat = await exec(id, { command: "cat", stdin: { value: "", encoding: "ascii", close: false } });
    expect((await stdin(id, cat, { value: "hello ", encoding: "ascii", close: false })).status).toBe(202);
    expect(
      (
        await stdin(id, cat, {
          value: Buffer.from("wörld\n").toString("base64"),
          encoding: "base64",
          close: true,
        })
      ).status,
    ).toBe(202);
    const r = await waitExit(id, cat);
    expect(r.state.exit_code).toBe(0);
    expect(decode(r.stdout)).toBe("hello wörld\n");
    expect((await stdin(id, cat, { value: "late", encoding: "ascii" })).status).toBe(409);
    expect((await stdin(id, cat, { value: "x", encoding: "latin1" })).status).toBe(400);
  });

  it("main stdin through spid 1 when spawned with stdin.close false; closing it ends the run", async () => {
    const { id } = await startMain({
      command: "cat",
      stdin: { value: "start ", encoding: "ascii", close: false },
    });
    expect((await stdin(id, 1, { value: "middle ", encoding: "ascii", close: false })).status).toBe(202);
    expect(
      (await stdin(id, 1, { value: Buffer.from("end").toString("base64"), encoding: "base64", close: true }))
        .status,
    ).toBe(202);
    const op = await waitOp(id);
    expect(op.status).toBe("SUCCESS");
    expect(decode(op.metadata.result?.stdout as Result["stdout"])).toBe("start middle end");
    // a main process whose stdin was closed at spawn takes no more input
    const { id: closed } = await startMain({ command: "sleep", args: ["60"] });
    expect((await stdin(closed, 1, { value: "x", encoding: "ascii" })).status).toBe(409);
  });

  it("subprocess events carry their spid and interleave with the main process's", async () => {
    const { id, follow } = await startMain({
      command: "cat",
      stdin: { value: "", encoding: "ascii", close: false },
    });
    const sub = await exec(id, {
      command: "cat",
      stdin: { value: "in-sub", encoding: "ascii", close: true },
      env: { API_TOKEN: "secret-value" },
    });
    await waitExit(id, sub);
    await stdin(id, 1, { value: "", close: true });
    const all = await follow.done();
    expect(follow.parser.violations).toEqual([]);
    const mine = all.filter((e) => e.spid === sub);
    expect(mine.map((e) => e.type)).toEqual(["spawn", "stdin", "stdout", "exit"]);
    expect(mine[0]?.data).toMatchObject({ command: "cat", args: [] });
    const env = (mine[0]?.data["env"] ?? {}) as Record<string, string>;
    expect(env["API_TOKEN"]).not.toBe("secret-value");
    expect(outputOf(all, "stdout", sub)).toBe("in-sub");
    expect(all.at(-1)?.type).toBe("completion");
    const filtered = await (await events(id, { spid: sub })).done();
    expect(filtered).toEqual([...mine, all.at(-1)]);
  });

  it("404 for an unknown spid, an unknown operation or another project's operation; 409 once the parent is terminal", async () => {
    const { id } = await startMain({ command: "cat", stdin: { value: "", encoding: "ascii", close: false } });
    expect((await api(`/v1/operations/${id}/subprocesses/99`)).status).toBe(404);
    expect((await api(`/v1/operations/${id}/subprocesses/99?signal=TERM`, { method: "DELETE" })).status).toBe(
      404,
    );
    expect((await stdin(id, 99, { value: "x" })).status).toBe(404);
    const nobody = "00000000-0000-4000-8000-000000000000";
    expect(
      (await api(`/v1/operations/${nobody}/subprocesses`, { method: "POST", json: { command: "true" } }))
        .status,
    ).toBe(404);
    const foreign = { authorization: `Bearer ${otherToken}` };
    expect(
      (
        await api(`/v1/operations/${id}/subprocesses`, {
          method: "POST",
          json: { command: "true" },
          headers: foreign,
        })
      ).status,
    ).toBe(404);
    expect((await api(`/v1/operations/${id}/subprocesses/1`, { headers: foreign })).status).toBe(404);
    expect(
      (
        await api(`/v1/operations/${id}/subprocesses/1/stdin`, {
          method: "POST",
          json: { value: "x" },
          headers: foreign,
        })
      ).status,
    ).toBe(404);
    expect(
      (await api(`/v1/operations/${id}/subprocesses`, { method: "POST", json: { command: "" } })).status,
    ).toBe(400);

    await stdin(id, 1, { value: "", close: true });
    await waitOp(id);
    expect(
      (await api(`/v1/operations/${id}/subprocesses`, { method: "POST", json: { command: "true" } })).status,
    ).toBe(409);
    expect((await api(`/v1/operations/${id}/subprocesses/1?signal=TERM`, { method: "DELETE" })).status).toBe(
      409,
    );
    expect((await stdin(id, 1, { value: "x" })).status).toBe(409);
    // the main process's folded result stays readable after the end
    expect((await result(id, 1)).state.exit_code).toBe(0);
  });

  it("when the main process exits, subprocesses still running are killed, and their exit precedes completion", async () => {
    const { id, follow } = await startMain({
      command: "cat",
      stdin: { value: "", encoding: "ascii", close: false },
      disposable: false,
    });
    const sleeper = await exec(id, { command: "sleep", args: ["30"] });
    const late = await exec(id, { command: "echo started; sleep 3; touch /root/late", shell: true });
    // both really run inside the sandbox before the main process goes
    await follow.until((s) => outputOf(s.events(), "stdout", late).includes("started"));
    const t0 = Date.now();
    await stdin(id, 1, { value: "", close: true });
    const op = await waitOp(id);
    console.log(
      `[subprocesses] run with 2 live subprocesses finished ${Date.now() - t0} ms after main stdin closed`,
    );
    expect(op.status).toBe("SUCCESS");
    const all = await follow.done();
    const exits = all.filter((e) => e.type === "exit" && (e.spid === sleeper || e.spid === late));
    expect(exits).toHaveLength(2);
    for (const e of exits) expect(e.data["signal"]).toBe(9);
    expect(all.at(-1)?.type).toBe("completion");
    expect(all.findIndex((e) => e.type === "completion")).toBe(all.length - 1);
    const image = op.result.image;
    if (image)
      expect((await api(`/v1/inspect/${image}/download?path=/root/late`, { method: "HEAD" })).status).toBe(
        404,
      );
    api.assertClean();
  });
});
