import type { Duplex } from "node:stream";
import {
  conflict,
  failedPrecondition,
  notFound,
  payloadTooLarge,
  resourceExhausted,
} from "../core/errors.js";
import { decodeStreamInput } from "../core/stream-repr.js";
import type { Logger } from "../observability/logger.js";
import type { OutputStore } from "../outputs/output-store.js";
import { connectPort } from "../runtime/port-connect.js";
import type { Sandbox } from "../runtime/runtime-driver.js";
import type { ExecSpec } from "./exec-spec.js";
import { execProcess } from "./process.js";
import { ProcessSupervisor, type TerminalSession } from "./process-supervisor.js";
import { StdinLog } from "./stdin-log.js";

/**
 * Stdin one operation may be fed through the stdin endpoint (all its processes together): every
 * write is kept (echo events, stored stream), so without a cap one tenant could fill the disk.
 */
const MAX_STDIN_PER_OPERATION = 64 * 1024 * 1024;

type Emit = (spid: number, type: string, data: Record<string, unknown>) => Promise<void>;
type Result = ReturnType<ProcessSupervisor["result"]> & { state: { running: boolean } };

interface Proc {
  sup: ProcessSupervisor;
  /** Echo events of what was written to stdin (large writes stored apart). */
  stdinLog: StdinLog;
  /** Settles once the process's exit has been recorded (its `exit` event appended); spid ≥ 2 only. */
  settled?: Promise<void>;
}

interface Live {
  sandbox: Sandbox;
  emit: Emit;
  main: ProcessSupervisor;
  nextSpid: number;
  procs: Map<number, Proc>;
  /** Stdin bytes taken so far (counted against MAX_STDIN_PER_OPERATION). */
  stdinBytes: number;
  /** Open connections to the sandbox's ports (closed when the instance ends). */
  ports: Set<Duplex>;
  /** Port connections open or being opened (the per-instance limit counts these). */
  portSlots: number;
}

/** Ended instances whose subprocess results are kept in memory. */
const MAX_ENDED = 64;

/**
 * Sandboxes of running instance operations, so that extra processes (spid ≥ 2) can be started
 * in them, signalled and fed stdin while the main process (spid 1) lives. Every process is a
 * ProcessSupervisor, the main one included (the instance handler drives that one).
 */
export class LiveInstances {
  private readonly live = new Map<string, Live>();
  private readonly ended = new Map<string, Map<number, Result>>();

  /** Subprocess output past the inline size goes to the operation's streams in `outputs`. */
  constructor(
    private readonly outputs: OutputStore,
    private readonly logger?: Pick<Logger, "warn">,
  ) {}

  register(opId: string, sandbox: Sandbox, emit: Emit, main: ProcessSupervisor): void {
    const procs = new Map<number, Proc>([[1, { sup: main, stdinLog: this.stdinLog(opId, 1) }]]);
    this.live.set(opId, {
      sandbox,
      emit,
      main,
      nextSpid: 2,
      procs,
      stdinBytes: 0,
      ports: new Set(),
      portSlots: 0,
    });
  }

  /** The main process ended: close every stdin and kill what is left (the caller kills the cgroup). */
  async unregister(opId: string): Promise<void> {
    const l = this.live.get(opId);
    if (!l) return;
    this.live.delete(opId);
    for (const s of l.ports) s.destroy();

    const subs = [...l.procs.values()].filter((p) => p.sup.spid >= 2);
    for (const p of l.procs.values()) p.sup.stdin?.end();
    for (const p of subs) if (!p.sup.hasExited) await p.sup.kill("SIGKILL").catch(() => undefined);
    // Their exit events must precede the operation's completion (followers close right after it).
    const pending = subs.flatMap((p) => (p.settled ? [p.settled] : []));
    await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 5000).unref())]);
    for (const p of l.procs.values()) await p.stdinLog.close().catch(() => undefined);
    // Folded results of subprocesses stay readable after the instance ends (bounded, oldest dropped).
    this.ended.set(opId, new Map(subs.map((p) => [p.sup.spid, fold(p.sup)])));
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
    const sup = new ProcessSupervisor(
      { opId, emit: l.emit, outputs: this.outputs, ...(this.logger ? { logger: this.logger } : {}) },
      {
        spid,
        command: spec.command,
        args: spec.args,
        shell: spec.shell,
        env: { ...l.main.env, ...spec.env },
        cwd: spec.cwd,
        uid: spec.uid,
        gid: spec.gid,
        timeout: 0,
        truncateAt: spec.truncate_output_at,
        stdinOpen: true,
        ...(spec.tty === undefined ? {} : { tty: spec.tty }),
        ...(l.main.cmd.secretEnv ? { secretEnv: l.main.cmd.secretEnv } : {}),
        ...(l.main.cmd.mask ? { mask: l.main.cmd.mask } : {}),
      },
    );
    const proc: Proc = { sup, stdinLog: this.stdinLog(opId, spid) };
    await sup.start(
      async (p) => execProcess(await l.sandbox.exec(p, { stdin: "pipe" })),
      () => l.procs.set(spid, proc),
    );
    try {
      await this.writeStdin(opId, spid, spec.stdin.value, spec.stdin.encoding, spec.stdin.close);
    } finally {
      proc.settled = sup
        .wait()
        .then(() => sup.recordExit())
        .catch(() => undefined);
    }
    return spid;
  }

  /**
   * A stream to `port` on the running instance's own loopback, as its main process's user
   * (runtime/port-connect.ts); destroyed when the instance ends. At most `max` per instance are
   * open or opening at once (429 beyond).
   */
  async connectPort(opId: string, port: number, max: number): Promise<Duplex> {
    const l = this.get(opId);
    if (l.portSlots >= max)
      throw resourceExhausted(`this instance already has ${max} open port connections`, { retryAfter: 1 });
    l.portSlots++;
    let s: Duplex;
    try {
      s = await connectPort(l.sandbox, port, { uid: l.main.cmd.uid, gid: l.main.cmd.gid });
    } catch (e) {
      l.portSlots--;
      throw e;
    }
    s.once("close", () => {
      l.ports.delete(s);
      l.portSlots--;
    });
    if (this.live.get(opId) !== l) {
      s.destroy();
      throw failedPrecondition("the instance has finished");
    }
    l.ports.add(s);
    return s;
  }

  /** Whether this instance is running, or ended recently enough that its processes are known. */
  knows(opId: string): boolean {
    return this.live.has(opId) || this.ended.has(opId);
  }

  /** The folded InstanceResult of a process so far (exit code and signal -1 while running). */
  result(opId: string, spid: number): Result {
    const ended = this.ended.get(opId)?.get(spid);
    if (ended) return ended;
    const p = this.live.get(opId)?.procs.get(spid);
    if (!p) throw notFound(`no process ${spid} in this instance`);
    return fold(p.sup);
  }

  /** The terminal of a running process started with `tty: true` (409 without one). */
  terminal(opId: string, spid: number): TerminalSession {
    const p = this.get(opId).procs.get(spid);
    if (!p) throw notFound(`no process ${spid} in this instance`);
    if (p.sup.hasFinished) throw conflict(`process ${spid} has already exited`);
    const t = p.sup.terminal();
    if (t === null) throw conflict(`process ${spid} has no terminal (start it with "tty": true)`);
    return t;
  }

  async signal(opId: string, spid: number, sig: NodeJS.Signals): Promise<void> {
    const p = this.get(opId).procs.get(spid);
    if (!p) throw notFound(`no process ${spid} in this instance`);
    if (p.sup.hasExited) throw conflict(`process ${spid} has already exited`);
    await p.sup.kill(sig);
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
    const stdin = p.sup.stdin;
    if (!stdin || stdin.writableEnded) {
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
        stdin.write(bytes, (err) =>
          err ? reject(conflict(`stdin of process ${spid} is closed`)) : resolve(),
        ),
      );
      for (const data of echoes) await l.emit(spid, "stdin", data);
    }
    if (close) stdin.end();
  }
}

/** A process's result with whether it still runs (the subprocess GET). */
function fold(sup: ProcessSupervisor): Result {
  const r = sup.result();
  return { ...r, state: { ...r.state, running: !sup.hasFinished } };
}
