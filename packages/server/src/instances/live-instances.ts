import type { Writable } from "node:stream";
import { conflict, failedPrecondition, notFound, payloadTooLarge } from "../core/errors.js";
import { decodeStreamInput, type StreamRepr, toStreamRepr } from "../core/stream-repr.js";
import type { Logger } from "../observability/logger.js";
import type { OutputRef } from "../outputs/output-ref.js";
import type { OutputStore } from "../outputs/output-store.js";
import type { ProcessHandle, ProcessSpec, Sandbox } from "../runtime/runtime-driver.js";
import type { ExecSpec } from "./exec-spec.js";
import { OutputCapture } from "./output-capture.js";
import { eventResources, redactEnv, resultResources } from "./resources.js";
import { StdinLog } from "./stdin-log.js";

/**
 * Stdin one operation may be fed through the stdin endpoint (all its processes together): every
 * write is kept (echo events, stored stream), so without a cap one tenant could fill the disk.
 */
export const MAX_STDIN_PER_OPERATION = 64 * 1024 * 1024;

type Emit = (spid: number, type: string, data: Record<string, unknown>) => Promise<void>;

interface Proc {
  spid: number;
  handle: ProcessHandle | null;
  stdin: Writable | null;
  /** Echo events of what was written to stdin (large writes stored apart). */
  stdinLog: StdinLog;
  started: number;
  stdout: OutputCapture | null;
  stderr: OutputCapture | null;
  /** Settles once the process's exit has been recorded (its `exit` event appended). */
  settled?: Promise<void>;
  /** Set once the process has exited and its output is complete. */
  final?: {
    exitCode: number;
    signal: number;
    stdout: StreamRepr | OutputRef;
    stderr: StreamRepr | OutputRef;
    ended: number;
  };
}

interface Live {
  sandbox: Sandbox;
  emit: Emit;
  baseEnv: Record<string, string>;
  nextSpid: number;
  procs: Map<number, Proc>;
  /** Stdin bytes taken so far (counted against MAX_STDIN_PER_OPERATION). */
  stdinBytes: number;
}

/**
 * Sandboxes of running instance operations, so that extra processes (spid ≥ 2) can be started
 * in them, signalled and fed stdin while the main process (spid 1) lives.
 */
/** Ended instances whose subprocess results are kept in memory. */
const MAX_ENDED = 64;

export class LiveInstances {
  private readonly live = new Map<string, Live>();
  private readonly ended = new Map<string, Map<number, ReturnType<typeof fold>>>();

  /** Subprocess output past the inline size goes to the operation's streams in `outputs`. */
  constructor(
    private readonly outputs: OutputStore,
    private readonly logger?: Pick<Logger, "warn">,
  ) {}

  register(
    opId: string,
    sandbox: Sandbox,
    emit: Emit,
    baseEnv: Record<string, string>,
    mainStdin: Writable | null,
  ): void {
    const procs = new Map<number, Proc>();
    procs.set(1, {
      spid: 1,
      handle: null,
      stdin: mainStdin,
      stdinLog: this.stdinLog(opId, 1),
      started: Date.now(),
      stdout: null,
      stderr: null,
    });
    this.live.set(opId, { sandbox, emit, baseEnv, nextSpid: 2, procs, stdinBytes: 0 });
  }

  /** The main process ended: close its stdin and kill what is left (the caller kills the cgroup). */
  async unregister(opId: string): Promise<void> {
    const l = this.live.get(opId);
    if (!l) return;
    this.live.delete(opId);

    for (const p of l.procs.values()) {
      p.stdin?.end();
      if (p.handle && !p.final) await p.handle.kill("SIGKILL").catch(() => undefined);
    }
    // Their exit events must precede the operation's completion (followers close right after it).
    const pending = [...l.procs.values()].flatMap((p) => (p.settled ? [p.settled] : []));
    await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 5000).unref())]);
    for (const p of l.procs.values()) await p.stdinLog.close().catch(() => undefined);
    // Folded results of subprocesses stay readable after the instance ends (bounded, oldest dropped).
    const results = new Map<number, ReturnType<typeof fold>>();
    for (const p of l.procs.values()) if (p.spid >= 2) results.set(p.spid, fold(p));
    this.ended.set(opId, results);
    if (this.ended.size > MAX_ENDED) this.ended.delete(this.ended.keys().next().value as string);
  }

  private stdinLog(opId: string, spid: number): StdinLog {
    const name = `${spid}.stdin`;
    return new StdinLog(name, () => this.outputs.create(opId, name));
  }

  has(opId: string): boolean {
    return this.live.has(opId);
  }

  private get(opId: string): Live {
    const l = this.live.get(opId);
    if (!l) throw failedPrecondition("the instance is not running");
    return l;
  }

  async exec(opId: string, spec: ExecSpec): Promise<number> {
    const l = this.get(opId);
    const spid = l.nextSpid++;
    const env = { ...l.baseEnv, ...spec.env };
    const args = spec.shell ? ["/bin/sh", "-c", spec.command, ...spec.args] : [spec.command, ...spec.args];
    const p: ProcessSpec = {
      args,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: spec.cwd,
      uid: spec.uid,
      gid: spec.gid,
    };
    const handle = await l.sandbox.exec(p, { stdin: "pipe" });
    const proc: Proc = {
      spid,
      handle,
      stdin: handle.stdin,
      stdinLog: this.stdinLog(opId, spid),
      started: Date.now(),
      stdout: null,
      stderr: null,
    };
    l.procs.set(spid, proc);
    await l.emit(spid, "spawn", {
      pid: handle.pid,
      command: args[0],
      args: args.slice(1),
      shell: spec.shell,
      cwd: spec.cwd,
      uid: spec.uid,
      gid: spec.gid,
      timeout: 0,
      truncate_at: spec.truncate_output_at,
      env: redactEnv(env),
    });
    const capture = (stream: "stdout" | "stderr") => {
      const name = `${spid}.${stream}`;
      return new OutputCapture(
        stream === "stdout" ? handle.stdout : handle.stderr,
        spec.truncate_output_at,
        { name, create: () => this.outputs.create(opId, name) },
        (data) => l.emit(spid, stream, data),
        (err) => this.logger?.warn({ err, opId, spid, stream }, "could not store output"),
      );
    };
    proc.stdout = capture("stdout");
    proc.stderr = capture("stderr");
    handle.stdin?.on("error", () => undefined);
    await this.writeStdin(opId, spid, spec.stdin.value, spec.stdin.encoding, spec.stdin.close);
    proc.settled = (async () => {
      const st = await handle.wait();
      const [out, err] = await Promise.all([proc.stdout?.done, proc.stderr?.done]);
      const ended = Date.now();
      const exitCode = st.signal > 0 ? -1 : st.exitCode;
      proc.final = {
        exitCode,
        signal: st.signal,
        stdout: out?.repr ?? toStreamRepr(Buffer.alloc(0)),
        stderr: err?.repr ?? toStreamRepr(Buffer.alloc(0)),
        ended,
      };
      for (const [name, c] of [
        ["stdout", out],
        ["stderr", err],
      ] as const) {
        if (c && c.dropped > 0)
          await l.emit(spid, "truncated", {
            stream: name,
            bytes_emitted: c.emitted,
            bytes_dropped: c.dropped,
          });
      }
      await l.emit(spid, "exit", {
        pid: handle.pid,
        code: exitCode,
        signal: st.signal,
        timed_out: false,
        duration_ms: ended - proc.started,
        resources: eventResources(undefined),
      });
    })().catch(() => undefined);
    return spid;
  }

  /** The folded InstanceResult of a process so far (exit code and signal -1 while running). */
  /** Whether this instance is running, or ended recently enough that its processes are known. */
  knows(opId: string): boolean {
    return this.live.has(opId) || this.ended.has(opId);
  }

  result(opId: string, spid: number) {
    const ended = this.ended.get(opId)?.get(spid);
    if (ended) return ended;
    const p = this.live.get(opId)?.procs.get(spid);
    if (!p) throw notFound(`no process ${spid} in this instance`);
    return fold(p);
  }

  async signal(opId: string, spid: number, sig: NodeJS.Signals): Promise<void> {
    const l = this.get(opId);
    const p = l.procs.get(spid);
    if (!p) throw notFound(`no process ${spid} in this instance`);
    if (spid === 1) {
      await l.sandbox.kill(sig);
      return;
    }
    if (p.final) throw conflict(`process ${spid} has already exited`);
    await p.handle?.kill(sig);
  }

  async writeStdin(
    opId: string,
    spid: number,
    value: string,
    encoding: string | undefined,
    close: boolean,
  ): Promise<void> {
    const l = this.get(opId);
    const p = l.procs.get(spid);
    if (!p) throw notFound(`no process ${spid} in this instance`);
    const bytes = decodeStreamInput(value, encoding, "stdin");
    if (!p.stdin || p.stdin.writableEnded) {
      if (bytes.length > 0) throw conflict(`stdin of process ${spid} is closed`);
      return;
    }
    if (bytes.length > 0) {
      if (l.stdinBytes + bytes.length > MAX_STDIN_PER_OPERATION)
        throw payloadTooLarge(
          `stdin of this operation would exceed its limit of ${MAX_STDIN_PER_OPERATION} bytes; nothing was written`,
        );
      l.stdinBytes += bytes.length;
      // Recorded before it goes down the pipe: a refusal (disk full) then means nothing was consumed.
      let echoes: Array<Record<string, unknown>>;
      try {
        echoes = await p.stdinLog.record(bytes);
      } catch (err) {
        l.stdinBytes -= bytes.length;
        throw err;
      }
      await new Promise<void>((resolve, reject) =>
        p.stdin?.write(bytes, (err) =>
          err ? reject(conflict(`stdin of process ${spid} is closed`)) : resolve(),
        ),
      );
      for (const data of echoes) await l.emit(spid, "stdin", data);
    }
    if (close) p.stdin.end();
  }
}

/** The folded InstanceResult of one process (exit code and signal -1 while it runs). */
function fold(p: Proc) {
  return {
    state: {
      exit_code: p.final?.exitCode ?? -1,
      signal: p.final?.signal ?? -1,
      pid: p.handle?.pid ?? 1,
      timed_out: false,
      stopped: false,
      continued: false,
      core_dump: false,
      running: p.final === undefined,
    },
    stdout: p.final?.stdout ?? { value: "", encoding: "ascii", truncated: false },
    stderr: p.final?.stderr ?? { value: "", encoding: "ascii", truncated: false },
    resources: resultResources(undefined, (p.final?.ended ?? Date.now()) - p.started),
  };
}
