import type { Readable, Writable } from "node:stream";
import { internal, isStorageFull } from "../core/errors.js";
import type { Logger } from "../observability/logger.js";
import type { OutputStore } from "../outputs/output-store.js";
import type { ProcessSpec, ResourceStats, TerminalSize } from "../runtime/runtime-driver.js";
import { TerminalInput } from "../runtime/terminal-frames.js";
import type { ExecSpec } from "./exec-spec.js";
import { type CaptureResult, OutputCapture } from "./output-capture.js";
import { argvOf, type Process, type ProcessExit } from "./process.js";
import {
  eventResources,
  type ProcessResources,
  processResources,
  redactEnv,
  resultResources,
} from "./resources.js";
import { type MaskedValue, SecretMask } from "./secret-mask.js";

type Emit = (spid: number, type: string, data: Record<string, unknown>) => Promise<void>;

/** What to run, as the spawn request (or exec request) gave it. */
interface SupervisedCommand extends Pick<ExecSpec, "command" | "args" | "shell" | "cwd" | "uid" | "gid"> {
  spid: number;
  /** The whole environment of the process (defaults, image and request merged). */
  env: Record<string, string>;
  /** Seconds until the process is killed; 0: never (exec'd processes end with the main one). */
  timeout: number;
  truncateAt: number;
  /** Whether the stdin endpoint may write to it (the main process's can be closed at spawn). */
  stdinOpen: boolean;
  /** A pseudo-terminal of this size at start: one output stream (stdout), stdin typed into it. */
  tty?: TerminalSize;
  /** Variables holding secrets: their values are never shown (spawn event), whatever their names. */
  secretEnv?: ReadonlySet<string>;
  /** Secret values replaced in its output before anything stores it. */
  mask?: readonly MaskedValue[];
}

/** The live side of a process's terminal, for the terminal channel. */
export interface TerminalSession {
  /** Typed into the terminal (also the stdin endpoint's writes); null once stdin was closed. */
  input: TerminalInput | null;
  /** Calls `listener` with the terminal's output from now on; returns the unsubscribe. */
  onOutput(listener: (chunk: Buffer) => void): () => void;
  /** Settles once the process has exited and its output is complete. */
  finished: Promise<ProcessOutcome>;
}

/** Where a supervised process reports to: its operation's event log and output streams. */
export interface SupervisorContext {
  opId: string;
  emit: Emit;
  outputs: OutputStore;
  logger?: Pick<Logger, "warn">;
}

/** A process that has exited and whose output is complete. */
export interface ProcessOutcome {
  status: ProcessExit;
  timedOut: boolean;
  stdout: CaptureResult;
  stderr: CaptureResult;
  resources: ProcessResources;
  /** The process's own cgroup figures, when it has a cgroup of its own (the main process). */
  stats: ResourceStats | undefined;
  ended: number;
}

const EMPTY_STREAM = { value: "", encoding: "ascii", truncated: false } as const;

/**
 * The life of one process of an instance, the same for the main process (spid 1) and exec'd
 * ones (spid ≥ 2): its argv and environment, the spawn event, both output captures, timeout and
 * cancel, the truncated and exit events, and its folded result. The result says what the wait
 * status says, never what was asked (a TERM the process traps is no exit by TERM).
 */
export class ProcessSupervisor {
  private proc: Process | null = null;
  private started = Date.now();
  private stdout: OutputCapture | null = null;
  private stderr: OutputCapture | null = null;
  private exit: ProcessExit | null = null;
  private outcome: ProcessOutcome | null = null;
  private input: Writable | null = null;
  private settle: (o: ProcessOutcome) => void = () => undefined;
  /** Settles with the outcome once wait() has it (never rejects). */
  readonly finished = new Promise<ProcessOutcome>((resolve) => {
    this.settle = resolve;
  });

  constructor(
    private readonly ctx: SupervisorContext,
    readonly cmd: SupervisedCommand,
  ) {}

  get spid(): number {
    return this.cmd.spid;
  }

  get env(): Record<string, string> {
    return this.cmd.env;
  }

  /** Set once the process has exited (its output may still be draining). */
  get hasExited(): boolean {
    return this.exit !== null;
  }

  /** Set once the process has exited and its output is complete. */
  get hasFinished(): boolean {
    return this.outcome !== null;
  }

  /** Its stdin for the stdin endpoint: null once closed at spawn or before it started. */
  get stdin(): Writable | null {
    return this.cmd.stdinOpen ? this.input : null;
  }

  /** Its stdin for the spawn request's input, whether or not it stays open after (framed with a terminal). */
  get spawnInput(): Writable | null {
    return this.input;
  }

  /** The terminal of a `tty` process once started; null without one. */
  terminal(): TerminalSession | null {
    const p = this.proc;
    if (this.cmd.tty === undefined || p === null) return null;
    const input = this.stdin;
    return {
      input: input instanceof TerminalInput && !input.writableEnded ? input : null,
      onOutput: (listener) => {
        p.stdout.on("data", listener);
        return () => p.stdout.off("data", listener);
      },
      finished: this.finished,
    };
  }

  /** The process as the runtime is asked to start it. */
  processSpec(): ProcessSpec {
    const c = this.cmd;
    return {
      args: argvOf(c.command, c.args, c.shell),
      env: Object.entries(c.env).map(([k, v]) => `${k}=${v}`),
      cwd: c.cwd,
      uid: c.uid,
      gid: c.gid,
      ...(c.tty === undefined ? {} : { tty: c.tty }),
    };
  }

  /**
   * Starts the process through `obtain` (the sandbox's main process, or an exec of this spec into
   * it), then
   * `onStarted` (before the spawn event: a client that waits for it may act at once), the spawn
   * event, and the captures of both output streams.
   */
  async start(obtain: (spec: ProcessSpec) => Promise<Process>, onStarted?: () => void): Promise<Process> {
    const spec = this.processSpec();
    const p = await obtain(spec);
    this.proc = p;
    this.started = Date.now();
    p.stdin?.on("error", () => undefined);
    // With a terminal the init reads frames: input and resizes are framed on the way in.
    this.input = p.stdin !== null && this.cmd.tty !== undefined ? new TerminalInput(p.stdin) : p.stdin;
    this.input?.on("error", () => undefined);
    onStarted?.();
    const c = this.cmd;
    await this.ctx.emit(c.spid, "spawn", {
      pid: p.pid,
      command: spec.args[0],
      args: spec.args.slice(1),
      shell: c.shell,
      cwd: c.cwd,
      uid: c.uid,
      gid: c.gid,
      timeout: c.timeout,
      truncate_at: c.truncateAt,
      env: redactEnv(c.env, c.secretEnv),
      ...(c.tty === undefined ? {} : { tty: true, rows: c.tty.rows, cols: c.tty.cols }),
    });
    this.stdout = this.capture(p, "stdout");
    this.stderr = this.capture(p, "stderr");
    return p;
  }

  private capture(p: Process, stream: "stdout" | "stderr"): OutputCapture {
    const { opId, outputs, logger } = this.ctx;
    const spid = this.cmd.spid;
    const name = `${spid}.${stream}`;
    const source = stream === "stdout" ? p.stdout : p.stderr;
    return new OutputCapture(
      this.cmd.mask && this.cmd.mask.length > 0 ? masked(source, this.cmd.mask) : source,
      this.cmd.truncateAt,
      { name, create: () => outputs.create(opId, name) },
      (data) => this.ctx.emit(spid, stream, data),
      (err) => logger?.warn({ err, opId, spid, stream }, "could not store output"),
    );
  }

  /** Delivers a signal (the API's DELETE …/subprocesses/{spid}). */
  async kill(signal: NodeJS.Signals): Promise<void> {
    await this.proc?.kill(signal);
  }

  /**
   * Waits for the exit, killing the process at its timeout or when `signal` aborts; then
   * `onExit` (what must go with it), the rest of its output, its resources, and a `truncated`
   * event per stream that passed truncate_output_at. The exit event is recordExit()'s.
   */
  async wait(o: { signal?: AbortSignal; onExit?: () => Promise<void> } = {}): Promise<ProcessOutcome> {
    const p = this.proc;
    if (p === null || this.stdout === null || this.stderr === null) throw internal("process not started");
    let timedOut = false;
    const kill = () => void p.kill("SIGKILL").catch(() => undefined);
    const timer =
      this.cmd.timeout > 0
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, this.cmd.timeout * 1000)
        : null;
    o.signal?.addEventListener("abort", kill, { once: true });
    if (o.signal?.aborted) kill();
    let status: ProcessExit;
    try {
      status = await p.wait();
    } finally {
      if (timer !== null) clearTimeout(timer);
      o.signal?.removeEventListener("abort", kill);
    }
    this.exit = status;
    await o.onExit?.();
    const [stdout, stderr] = await Promise.all([this.stdout.done, this.stderr.done]);
    const stats = await p.stats?.().catch(() => undefined);
    const outcome: ProcessOutcome = {
      status,
      timedOut,
      stdout,
      stderr,
      resources: processResources(status.rusage, stats),
      stats,
      ended: Date.now(),
    };
    this.outcome = outcome;
    this.settle(outcome);
    for (const [stream, c] of [
      ["stdout", stdout],
      ["stderr", stderr],
    ] as const) {
      if (c.dropped > 0)
        await this.recorded("truncated", { stream, bytes_emitted: c.emitted, bytes_dropped: c.dropped });
    }
    return outcome;
  }

  /** The `exit` event, once wait() has finished. */
  async recordExit(): Promise<void> {
    const o = this.outcome;
    if (o === null) throw internal("process has not exited");
    const { exitCode, signal } = codes(o.status);
    await this.recorded("exit", {
      pid: this.proc?.pid ?? 0,
      code: exitCode,
      signal,
      timed_out: o.timedOut,
      duration_ms: o.ended - this.started,
      core_dump: false,
      resources: eventResources(o.resources),
    });
  }

  private recorded(type: string, data: Record<string, unknown>): Promise<void> {
    return recordEvent(this.ctx, this.cmd.spid, type, data);
  }

  /** The folded InstanceResult (contree-api.md §3.6) so far: exit code and signal -1 while it runs. */
  result() {
    const o = this.outcome;
    const { exitCode, signal } = o === null ? { exitCode: -1, signal: -1 } : codes(o.status);
    const oom = o?.status.oomKilled;
    return {
      state: {
        exit_code: exitCode,
        signal,
        pid: this.proc?.pid ?? 0,
        timed_out: o?.timedOut ?? false,
        stopped: false,
        continued: false,
        core_dump: false,
        ...(oom === undefined ? {} : { oom_killed: oom }),
      },
      stdout: o?.stdout.repr ?? EMPTY_STREAM,
      stderr: o?.stderr.repr ?? EMPTY_STREAM,
      resources: resultResources(
        o?.resources ?? processResources(undefined, undefined),
        (o?.ended ?? Date.now()) - this.started,
      ),
    };
  }
}

/** An event after the process exited: from then on it has a result, which a full disk may cost events but never the result itself. */
export async function recordEvent(
  ctx: SupervisorContext,
  spid: number,
  type: string,
  data: Record<string, unknown>,
): Promise<void> {
  await ctx.emit(spid, type, data).catch((err: unknown) => {
    if (!isStorageFull(err)) throw err;
    ctx.logger?.warn({ err, opId: ctx.opId, type }, "event not stored: out of storage space");
  });
}

/** Exit code and signal as the API reports them: a process killed by a signal has exit code -1. */
function codes(s: ProcessExit): { exitCode: number; signal: number } {
  return s.signal > 0 ? { exitCode: -1, signal: s.signal } : { exitCode: s.exitCode, signal: -1 };
}

/** The stream through a SecretMask (an error of the source ends the mask too). */
function masked(source: Readable, values: readonly MaskedValue[]): Readable {
  const mask = new SecretMask(values);
  source.once("error", (err) => mask.destroy(err));
  return source.pipe(mask);
}
