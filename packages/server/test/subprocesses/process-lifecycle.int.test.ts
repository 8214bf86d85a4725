/**
 * What a process really did, on every driver (issue 11 §1, §4): a subprocess signal reaches the
 * process inside the sandbox within a second, and the result reports the real wait status
 * (KILL → signal 9; a TERM the process traps → its own exit 0, no signal). A command in argv form
 * that does not exist behaves like the shell form: exit 127 and a short "not found" naming it,
 * without the runtime's internals. Before the fix, DELETE …?signal=KILL answered 202 while the
 * process went on running (the runtime's exec client was signalled, not the process) and the
 * result claimed signal 9; a missing argv command exited 1 (crun) or 128 (runsc) with the
 * runtime's error chain on stderr. Resources are the command's real `struct rusage` (from a
 * wait4 inside the sandbox) for the main process and subprocesses alike; before, everything but
 * CPU time and peak memory was 0, and a subprocess's resources were all 0.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContractApi, contractApi } from "../contracts/contract-api.js";
import { openEvents, outputOf, type SseStream } from "../events/sse-client.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { withoutCrun } from "../harness/tenant.js";

type Stream = { value: string; encoding: string };
type Result = { state: { exit_code: number; signal: number }; stdout: Stream; stderr: Stream };
const decode = (s: Stream) => (s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value);

const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

/** What leaks when a runtime reports a failed exec itself. */
const RUNTIME_INTERNALS =
  /running container|starting (container|sandbox)|creating process|\boci\b|crun|runsc|runc/i;
const MISSING = "no-such-command-4711";

/**
 * The main process: watches /proc for `sleep 1000` and says "present" when it appears and "gone"
 * when it is no longer there, polling every 50 ms, then lives on. The pattern is built at run
 * time so that this script's own command line never matches it.
 */
const WATCHER = [
  "n=1000; seen=0",
  "while :; do",
  '  all=$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " ")',
  '  case "$all" in *"sleep $n "*) [ $seen = 0 ] && echo present; seen=1 ;;',
  "    *) [ $seen = 1 ] && { echo gone; exec sleep 600; } ;; esac",
  "  sleep 0.05",
  "done",
].join("\n");

describe.each(DRIVERS)("process lifecycle ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let api: ContractApi;
  const streams: SseStream[] = [];
  const running: string[] = [];

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
  const waitExit = async (id: string, spid: number, timeoutMs = 30_000): Promise<Result> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = await body<Result>(await api(`/v1/operations/${id}/subprocesses/${spid}`), 200);
      if (r.state.exit_code !== -1 || r.state.signal !== -1) return r;
      if (Date.now() > until) throw new Error(`process ${spid} still running after ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  const signal = (id: string, spid: number, sig: string) =>
    api(`/v1/operations/${id}/subprocesses/${spid}?signal=${sig}`, { method: "DELETE" });
  const exitEvent = (follow: SseStream, spid: number) =>
    follow.events().find((e) => e.type === "exit" && e.spid === spid)?.data;

  beforeAll(async () => {
    const start = () => startTestServer({ runtime });
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    api = contractApi(t);
    ({ registry: reg } = await importBusybox(t));
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    for (const id of running)
      await t?.api(`/v1/operations/${id}`, { method: "DELETE" }).catch(() => undefined);
    await t?.close();
    await reg?.stop();
  });

  it("KILL reaches the subprocess inside the sandbox within a second, and its result says signal 9", async () => {
    const { id, follow } = await startMain({ command: WATCHER, shell: true });
    const sleeper = await exec(id, { command: "sleep", args: ["1000"] });
    await follow.until((s) => outputOf(s.events(), "stdout").includes("present"), 30_000);
    const t0 = Date.now();
    expect((await signal(id, sleeper, "KILL")).status).toBe(202);
    // The watcher inside the sandbox reports when the process is gone (or never does).
    await follow.until((s) => outputOf(s.events(), "stdout").includes("gone"), 5_000).catch(() => undefined);
    const gone = follow.items.find(
      (i) =>
        i.item.kind === "event" &&
        i.item.event.type === "stdout" &&
        i.item.event.spid === 1 &&
        outputOf([i.item.event], "stdout").includes("gone"),
    );
    expect(gone, "the killed process still runs inside the sandbox 5 s after the KILL").toBeDefined();
    const ms = (gone?.at ?? Number.POSITIVE_INFINITY) - t0;
    console.log(`[signals/${name}] KILL → process gone inside the sandbox in ${ms} ms`);
    expect(ms).toBeLessThan(1000);
    expect((await waitExit(id, sleeper)).state).toMatchObject({ exit_code: -1, signal: 9 });
    // And another process in the sandbox sees no trace of it.
    const ps = await exec(id, { command: 'cat /proc/[0-9]*/cmdline | tr "\\0" " "', shell: true });
    const seen = decode((await waitExit(id, ps)).stdout);
    expect(seen).toContain("sleep 600");
    expect(seen).not.toContain("sleep 1000 ");
    await follow.until((s) => exitEvent(s, sleeper) !== undefined, 10_000);
    expect(exitEvent(follow, sleeper)).toMatchObject({ code: -1, signal: 9 });
  });

  it("a subprocess that traps TERM and exits 0 reports exit 0 and no signal", async () => {
    const { id, follow } = await startMain({ command: "sleep", args: ["600"] });
    const trapper = await exec(id, {
      command: "trap 'echo caught; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
      shell: true,
    });
    await follow.until((s) => outputOf(s.events(), "stdout", trapper).includes("ready"), 30_000);
    expect((await signal(id, trapper, "TERM")).status).toBe(202);
    const r = await waitExit(id, trapper, 10_000);
    expect(decode(r.stdout)).toBe("ready\ncaught\n");
    expect(r.state).toMatchObject({ exit_code: 0, signal: -1 });
    await follow.until((s) => exitEvent(s, trapper) !== undefined, 10_000);
    expect(exitEvent(follow, trapper)).toMatchObject({ code: 0, signal: -1 });
  });

  it("a main process that traps a TERM sent to spid 1 and exits 0 reports exit 0 and no signal", async () => {
    const { id, follow } = await startMain({
      command: "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
      shell: true,
    });
    await follow.until((s) => outputOf(s.events(), "stdout").includes("ready"), 30_000);
    expect((await signal(id, 1, "TERM")).status).toBe(202);
    const doc = (await waitOperation(t, id, 30_000)) as { status: string; metadata: { result: Result } };
    expect(doc.status).toBe("SUCCESS");
    expect(decode(doc.metadata.result.stdout)).toBe("ready\nbye\n");
    expect(doc.metadata.result.state).toMatchObject({ exit_code: 0, signal: -1 });
    expect(exitEvent(follow, 1)).toMatchObject({ code: 0, signal: -1 });
  });

  it("a missing command in argv form exits 127 with a short message naming it, like the shell form (runs)", async () => {
    const argv = await waitOperation(t, await spawn({ command: MISSING, args: ["x"] }));
    const shell = await waitOperation(t, await spawn({ command: `${MISSING} x`, shell: true }));
    for (const [form, doc] of [
      ["argv", argv],
      ["shell", shell],
    ] as const) {
      const r = (doc as { metadata: { result: Result } }).metadata.result;
      const stderr = decode(r.stderr);
      expect(r.state, `${form}: ${stderr}`).toMatchObject({ exit_code: 127, signal: -1 });
      expect(stderr, form).toContain(MISSING);
      expect(stderr, form).toMatch(/not found/i);
      expect(stderr, form).not.toMatch(RUNTIME_INTERNALS);
      expect(stderr.length, `${form}: ${stderr}`).toBeLessThan(200);
    }
  });

  it("a missing command in argv form exits 127 with a short message naming it, like the shell form (subprocesses)", async () => {
    const { id } = await startMain({ command: "sleep", args: ["600"] });
    const argv = await waitExit(id, await exec(id, { command: MISSING, args: ["x"] }));
    const shell = await waitExit(id, await exec(id, { command: `${MISSING} x`, shell: true }));
    for (const [form, r] of [
      ["argv", argv],
      ["shell", shell],
    ] as const) {
      const stderr = decode(r.stderr);
      expect(r.state, `${form}: ${stderr}`).toMatchObject({ exit_code: 127, signal: -1 });
      expect(stderr, form).toContain(MISSING);
      expect(stderr, form).toMatch(/not found/i);
      expect(stderr, form).not.toMatch(RUNTIME_INTERNALS);
      expect(stderr.length, `${form}: ${stderr}`).toBeLessThan(200);
    }
  });

  it("resources are the command's rusage, for the main process and for a subprocess", async () => {
    const work = "sleep 0.2; dd if=/dev/zero of=/dev/null bs=1M count=8 2>/dev/null";
    const { id, follow } = await startMain({
      command: `${work}; cat`,
      shell: true,
      stdin: { value: "", close: false },
    });
    const sub = await exec(id, { command: work, shell: true });
    const subResult = await waitExit(id, sub);
    await api(`/v1/operations/${id}/subprocesses/1/stdin`, {
      method: "POST",
      json: { value: "", close: true },
    });
    const doc = (await waitOperation(t, id)) as {
      consumed_cpu: number;
      metadata: { result: { resources: Record<string, number> } };
    };
    const events = await follow.done();
    const checks: Array<[string, Record<string, number>, Record<string, number>]> = [
      ["main", exitEvent(follow, 1)?.["resources"] as Record<string, number>, doc.metadata.result.resources],
      [
        "subprocess",
        events.find((e) => e.type === "exit" && e.spid === sub)?.data["resources"] as Record<string, number>,
        (subResult as unknown as { resources: Record<string, number> }).resources,
      ],
    ];
    for (const [who, ev, res] of checks) {
      const all = JSON.stringify({ ev, res });
      // Measured on every platform (gVisor's wait4 fills times and max RSS; a subprocess has no
      // cgroup of its own, so for it these come from the rusage alone).
      expect(ev["max_rss_kb"], `${who}: ${all}`).toBeGreaterThan(0);
      expect((ev["user_time_us"] ?? 0) + (ev["sys_time_us"] ?? 0), `${who}: ${all}`).toBeGreaterThan(0);
      if (name !== "runsc") {
        expect(ev["minor_faults"], `${who}: ${all}`).toBeGreaterThan(0);
        expect(ev["voluntary_ctx_switches"], `${who}: ${all}`).toBeGreaterThan(0);
      }
      // The result says the same in its own units.
      expect(res["max_rss"], who).toBe(ev["max_rss_kb"]);
      expect(res["voluntary_switches"], who).toBe(ev["voluntary_ctx_switches"]);
      expect(res["page_faults"], who).toBe(ev["minor_faults"]);
      expect(res["user_cpu_time"], who).toBeCloseTo((ev["user_time_us"] ?? 0) / 1e6, 6);
    }
    expect(doc.consumed_cpu).toBeGreaterThan(0);
  });

  async function spawn(spec: Record<string, unknown>): Promise<string> {
    const { uuid } = await body<{ uuid: string }>(
      await api("/v1/instances", {
        method: "POST",
        json: { image: "tag:busybox:latest", disposable: true, timeout: 60, ...spec },
      }),
      202,
    );
    return uuid;
  }
});
