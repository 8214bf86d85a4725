/**
 * Terminals (issue 16 §1), on every driver: `tty: true` gives the process a real pseudo-terminal
 * of the sandbox's own (`test -t 0/1`, `stty size`, input echo, ^C interrupting the foreground
 * job while the shell survives), its one output stream lands in the event log as stdout, and the
 * terminal channel (WebSocket) carries raw bytes, resizes and the exit, authenticated like the
 * API (Authorization header or the `contree.token.<token>` subprotocol).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { MAX_ATTACHED } from "../../src/api/terminal-socket.js";
import { type ContractApi, contractApi } from "../contracts/contract-api.js";
import { openEvents, outputOf, type SseStream } from "../events/sse-client.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant, withoutCrun } from "../harness/tenant.js";

type Stream = { value: string; encoding: string };
type Result = { state: { exit_code: number; signal: number }; stdout: Stream; stderr: Stream };
const decode = (s: Stream) => (s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value);

const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

/** A terminal client over `ws`: output collected, control messages kept. */
class Term {
  out = "";
  readonly messages: Array<Record<string, unknown>> = [];
  closeCode: number | undefined;
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, binary: boolean) => {
      if (binary) this.out += data.toString("utf8");
      else this.messages.push(JSON.parse(data.toString("utf8")) as Record<string, unknown>);
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on("close", (code) => {
        this.closeCode = code;
        for (const w of this.waiters) w();
        resolve();
      }),
    );
  }

  static open(url: string, headers: Record<string, string>, protocols?: string[]): Promise<Term> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols ?? [], { headers });
      const term = new Term(ws);
      ws.once("open", () => resolve(term));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once("error", reject);
    });
  }

  type(s: string): void {
    this.ws.send(Buffer.from(s), { binary: true });
  }

  /** Waits until `pred` holds on the output (from `from` on). */
  async until(pred: (out: string) => boolean, what: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.out)) {
      if (this.closeCode !== undefined)
        throw new Error(`closed (${this.closeCode}) waiting for ${what}: ${JSON.stringify(this.out)}`);
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.out)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
      this.waiters = [];
    }
  }
}

/** The HTTP status a refused upgrade answers with. */
function refusal(url: string, headers: Record<string, string>, protocols?: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols ?? [], { headers });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      ws.close();
      reject(new Error("the upgrade was accepted"));
    });
    ws.once("error", () => undefined);
  });
}

describe.each(DRIVERS)("terminals ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let api: ContractApi;
  const streams: SseStream[] = [];
  const running: string[] = [];
  const terms: Term[] = [];

  const wsUrl = (path: string) => `${t.url.replace(/^http/, "ws")}${t.config.pathPrefix}${path}`;
  const body = async <T>(r: Response, status: number): Promise<T> => {
    const text = await r.text();
    expect(r.status, text).toBe(status);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  };
  const startMain = async (spec: Record<string, unknown>) => {
    const { uuid } = await body<{ uuid: string }>(
      await api("/v1/instances", {
        method: "POST",
        json: { image: "tag:busybox:latest", disposable: true, timeout: 300, ...spec },
      }),
      202,
    );
    running.push(uuid);
    const follow = await openEvents({ url: t.url, token: t.token, prefix: t.config.pathPrefix }, uuid, {
      follow: true,
    });
    streams.push(follow);
    await follow.until((s) => s.events().some((e) => e.type === "spawn" && e.spid === 1), 60_000);
    return { id: uuid, follow };
  };
  const connect = async (path: string, o: { viaProtocol?: boolean } = {}) => {
    const term = o.viaProtocol
      ? await Term.open(wsUrl(path), {}, ["contree.v1", `contree.token.${t.token}`])
      : await Term.open(wsUrl(path), { authorization: `Bearer ${t.token}` });
    terms.push(term);
    return term;
  };
  const shellEnv = { PS1: "$ ", TERM: "xterm", ENV: "" };

  beforeAll(async () => {
    const start = () => startTestServer({ runtime });
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    api = contractApi(t);
    ({ registry: reg } = await importBusybox(t));
  });
  afterAll(async () => {
    for (const term of terms) term.ws.terminate();
    for (const s of streams) s.close();
    for (const id of running)
      await t?.api(`/v1/operations/${id}`, { method: "DELETE" }).catch(() => undefined);
    await t?.close();
    await reg?.stop();
  });

  it("a run with tty: true has a terminal of the given size; its one output stream is stdout", async () => {
    const { uuid } = await body<{ uuid: string }>(
      await api("/v1/instances", {
        method: "POST",
        json: {
          image: "tag:busybox:latest",
          disposable: true,
          command:
            "test -t 0 && test -t 1 && test -t 2 && echo is-a-tty; stty size; echo to-stderr >&2; exit 5",
          shell: true,
          tty: true,
          rows: 33,
          cols: 101,
          stdin: { value: "", close: true },
        },
      }),
      202,
    );
    const doc = (await waitOperation(t, uuid, 120_000)) as { status: string; metadata: { result: Result } };
    expect(doc.status).toBe("SUCCESS");
    const r = doc.metadata.result;
    expect(r.state.exit_code).toBe(5);
    const out = decode(r.stdout);
    expect(out).toContain("is-a-tty\r\n");
    expect(out).toContain("33 101\r\n");
    // Both streams go through the terminal: one output stream, stderr empty.
    expect(out).toContain("to-stderr\r\n");
    expect(decode(r.stderr)).toBe("");
    // The event log has it as stdout (replayable), and the spawn event says tty.
    const events = await openEvents({ url: t.url, token: t.token, prefix: t.config.pathPrefix }, uuid, {
      follow: false,
    });
    streams.push(events);
    await events.until((s) => s.events().some((e) => e.type === "completion"), 10_000);
    expect(outputOf(events.events(), "stdout")).toContain("33 101");
    expect(outputOf(events.events(), "stderr")).toBe("");
    expect(events.events().find((e) => e.type === "spawn")?.data).toMatchObject({
      tty: true,
      rows: 33,
      cols: 101,
    });
  });

  it("without tty the process has no terminal (unchanged)", async () => {
    const { uuid } = await body<{ uuid: string }>(
      await api("/v1/instances", {
        method: "POST",
        json: {
          image: "tag:busybox:latest",
          disposable: true,
          command: "test -t 0 || echo no-tty",
          shell: true,
        },
      }),
      202,
    );
    const doc = (await waitOperation(t, uuid, 120_000)) as { metadata: { result: Result } };
    expect(decode(doc.metadata.result.stdout)).toBe("no-tty\n");
  });

  it("an interactive shell over the terminal channel: echo, ^C interrupts the job, resize, exit", async () => {
    const { id, follow } = await startMain({ command: "sh", tty: true, rows: 24, cols: 80, env: shellEnv });
    const term = await connect(`/v1/operations/${id}/terminal`, { viaProtocol: true });
    expect(term.ws.protocol).toBe("contree.v1");
    term.type("echo hel''lo\n");
    // The line discipline echoes the input; the shell runs it.
    await term.until((o) => o.includes("echo hel''lo") && o.includes("hello\r\n"), "echo");
    term.type("stty size\n");
    await term.until((o) => o.includes("24 80\r\n"), "initial size");
    // The job prints once it is the foreground process group, then sleeps; ^C must end it.
    term.type("sh -c 'echo slee''ping; exec sleep 1000'\n");
    await term.until((o) => o.includes("sleeping\r\n"), "the job");
    const before = term.out.length;
    term.type("\x03");
    await term.until((o) => o.slice(before).includes("$ "), "the prompt after ^C", 5_000);
    term.type("echo al''ive\n");
    await term.until((o) => o.includes("alive\r\n"), "the shell after ^C");
    term.ws.send(JSON.stringify({ type: "resize", rows: 50, cols: 132 }));
    term.type("stty size\n");
    await term.until((o) => o.includes("50 132\r\n"), "the new size");
    term.type("exit 3\n");
    await term.closed;
    expect(term.closeCode).toBe(1000);
    expect(term.messages.at(-1)).toMatchObject({ type: "exit", exit_code: 3, signal: -1 });
    const doc = (await waitOperation(t, id, 60_000)) as { metadata: { result: Result } };
    expect(doc.metadata.result.state.exit_code).toBe(3);
    // The whole session is in the event log as stdout.
    await follow.until((s) => s.events().some((e) => e.type === "completion"), 10_000);
    const logged = outputOf(follow.events(), "stdout");
    expect(logged).toContain("hello\r\n");
    expect(logged).toContain("50 132\r\n");
  });

  it("^Z to a program that is not a shell is discarded, as for any orphaned process group; ^C ends it", async () => {
    const { id } = await startMain({ command: "cat", tty: true });
    const term = await connect(`/v1/operations/${id}/terminal`);
    term.type("one\n");
    await term.until((o) => o.includes("one\r\none\r\n"), "cat's first line");
    term.type("\x1a");
    term.type("two\n");
    // Echoed by the terminal and written back by cat: cat was not stopped.
    await term.until((o) => o.includes("two\r\ntwo\r\n"), "cat after ^Z");
    term.type("\x03");
    await term.closed;
    expect(term.messages.at(-1)).toMatchObject({ type: "exit", exit_code: -1, signal: 2 });
  });

  it("the channel is authenticated and scoped: 401 without a token, 404 for another project, 409 without a terminal", async () => {
    const { id } = await startMain({ command: "sleep", args: ["1000"] });
    const path = wsUrl(`/v1/operations/${id}/terminal`);
    expect(await refusal(path, {})).toBe(401);
    expect(await refusal(path, {}, ["contree.v1", "contree.token.wrong"])).toBe(401);
    const other = await tenant(t, "terminal-other");
    expect(await refusal(path, { authorization: `Bearer ${other.token}` })).toBe(404);
    expect(await refusal(path, {}, ["contree.v1", `contree.token.${other.token}`])).toBe(404);
    // A browser names the project as a subprotocol, as the Project header would: the admin's
    // switch reaches that project (not this run's), and a user token may not name another.
    const admin = ["contree.v1", `contree.token.${t.token}`];
    expect(await refusal(path, {}, [...admin, "contree.project.terminal-other"])).toBe(404);
    expect(await refusal(path, {}, [...admin, "contree.project.nosuchproject"])).toBe(403);
    expect(
      await refusal(path, {}, ["contree.v1", `contree.token.${other.token}`, "contree.project.default"]),
    ).toBe(403);
    expect(await refusal(path, { authorization: `Bearer ${t.token}` })).toBe(409);
    // A plain GET (no upgrade) is documented in the OpenAPI and answered 400; 401 without a token.
    expect((await t.api(`/v1/operations/${id}/terminal`)).status).toBe(400);
    expect((await fetch(`${t.url}${t.config.pathPrefix}/v1/operations/${id}/terminal`)).status).toBe(401);
    expect(
      await refusal(wsUrl(`/v1/operations/${id}/subprocesses/7/terminal`), {
        authorization: `Bearer ${t.token}`,
      }),
    ).toBe(404);
  });

  it("timeouts and cancellation behave as without tty: the run is killed and the channel says so", async () => {
    const { id } = await startMain({ command: "sh", tty: true, timeout: 2, env: shellEnv });
    const term = await connect(`/v1/operations/${id}/terminal`);
    term.type("sleep 1000\n");
    await term.closed;
    expect(term.closeCode).toBe(1000);
    expect(term.messages.at(-1)).toMatchObject({ type: "exit", exit_code: -1, signal: 9, timed_out: true });
    const doc = (await waitOperation(t, id, 60_000)) as {
      metadata: { result: Result & { state: { timed_out: boolean } } };
    };
    expect(doc.metadata.result.state).toMatchObject({ exit_code: -1, signal: 9, timed_out: true });

    const cancelled = await startMain({ command: "sh", tty: true, env: shellEnv });
    const term2 = await connect(`/v1/operations/${cancelled.id}/terminal`);
    term2.type("echo rea''dy\n");
    await term2.until((o) => o.includes("ready\r\n"), "the shell");
    expect((await api(`/v1/operations/${cancelled.id}`, { method: "DELETE" })).status).toBeLessThan(300);
    await term2.closed;
    expect(term2.messages.at(-1)).toMatchObject({ type: "exit", signal: 9 });
    expect((await waitOperation(t, cancelled.id, 60_000))["status"]).toBe("CANCELLED");
  });

  // Server-side (the same on every driver): a client that stops reading is dropped, not buffered.
  if (name === "crun")
    it("a client that stops reading is closed with 4008 past 4 MiB unsent; the process is not held back", async () => {
      const { id } = await startMain({
        command: "read go; head -c 67108864 /dev/zero | tr '\\0' x; echo; echo fini''shed",
        shell: true,
        tty: true,
        truncate_output_at: 1024,
      });
      const term = await connect(`/v1/operations/${id}/terminal`);
      const socket = (term.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      socket.pause();
      term.type("go\n");
      const doc = (await waitOperation(t, id, 120_000)) as { metadata: { result: Result } };
      expect(doc.metadata.result.state.exit_code).toBe(0);
      socket.resume();
      await term.closed;
      expect(term.closeCode).toBe(4008);
      expect(term.out.length).toBeLessThan(64 * 1024 * 1024);
    });

  // Server-side: each channel may hold MAX_UNSENT of server memory, so one process takes a bounded number.
  if (name === "crun")
    it("one process takes at most MAX_ATTACHED channels (429 beyond)", async () => {
      const { id } = await startMain({ command: "sh", tty: true, env: shellEnv });
      const path = `/v1/operations/${id}/terminal`;
      const open: Awaited<ReturnType<typeof connect>>[] = [];
      for (let i = 0; i < MAX_ATTACHED; i++) open.push(await connect(path));
      expect(await refusal(wsUrl(path), { authorization: `Bearer ${t.token}` })).toBe(429);
      open[0]!.type("exit 0\n");
      await Promise.all(open.map((o) => o.closed));
    });

  // Server-side: shutdown tells terminal clients it is going away.
  if (name === "crun")
    it("closing the server ends open terminals with 1001 (going away)", async () => {
      const other = await startTestServer({ runtime });
      const imported = await importBusybox(other);
      try {
        const r = await other.api("/v1/instances", {
          method: "POST",
          json: { image: "tag:busybox:latest", command: "sh", tty: true, disposable: true, env: shellEnv },
        });
        const { uuid } = (await r.json()) as { uuid: string };
        let term: Term | undefined;
        for (let i = 0; term === undefined; i++) {
          term = await Term.open(`${other.url.replace(/^http/, "ws")}/v1/operations/${uuid}/terminal`, {
            authorization: `Bearer ${other.token}`,
          }).catch(async (e: unknown) => {
            if (i > 200) throw e;
            await new Promise((res) => setTimeout(res, 50));
            return undefined;
          });
        }
        terms.push(term);
        term.type("echo up''and-running\n");
        await term.until((o) => o.includes("upand-running\r\n"), "the shell");
        await other.close();
        await term.closed;
        expect(term.closeCode).toBe(1001);
      } finally {
        await other.close();
        await imported.registry.stop();
      }
    });

  it("a subprocess with tty in a live instance; the stdin endpoint types into its terminal", async () => {
    const { id } = await startMain({ command: "sleep", args: ["1000"] });
    const { spid } = await body<{ spid: number }>(
      await api(`/v1/operations/${id}/subprocesses`, {
        method: "POST",
        json: { command: "sh", tty: true, rows: 20, cols: 70, env: shellEnv },
      }),
      201,
    );
    const term = await connect(`/v1/operations/${id}/subprocesses/${spid}/terminal`);
    term.type("test -t 0 && echo sub-tty; stty size\n");
    await term.until((o) => o.includes("sub-tty\r\n") && o.includes("20 70\r\n"), "the subprocess terminal");
    await body(
      await api(`/v1/operations/${id}/subprocesses/${spid}/stdin`, {
        method: "POST",
        json: { value: "echo via-st''din\n", close: false },
      }),
      202,
    );
    await term.until((o) => o.includes("via-stdin\r\n"), "input through the stdin endpoint");
    term.type("exit 4\n");
    await term.closed;
    expect(term.messages.at(-1)).toMatchObject({ type: "exit", exit_code: 4 });
    const r = await body<Result>(await api(`/v1/operations/${id}/subprocesses/${spid}`), 200);
    expect(r.state.exit_code).toBe(4);
    expect(decode(r.stdout)).toContain("via-stdin\r\n");
  });
});
