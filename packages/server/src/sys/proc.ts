/**
 * A started host process with plain pipes. Two backends behind one shape: the native addon's
 * posix_spawn (cheap at any RSS) and Node's child_process (fork-based; the fallback).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { CGEXEC, nativeSys } from "./native-sys.js";

export interface ProcExit {
  /** Exit status; null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The program could not be started (fallback backend; the native one throws from launch). */
  error?: Error;
}

export interface Proc {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Read end of the pipe at the process's fd 3 (`reportPipe`), else null. */
  readonly report: Readable | null;
  /** Settles once the process is reaped (whether or not its output was drained). */
  readonly exited: Promise<ProcExit>;
  /** True until the process is reaped. */
  readonly running: boolean;
  /**
   * Its start time (field 22 of /proc/PID/stat), read before it could be reaped, so a watcher
   * can tell it from a later process that got the same pid; null when it could not be read.
   */
  readonly startTime: string | null;
  /** Sends a signal; a process already gone is not an error. */
  kill(signal?: NodeJS.Signals): void;
}

export interface LaunchOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdin?: "pipe" | "ignore";
  /** New session and process group: a terminal's ^C to the server does not reach it. */
  detached?: boolean;
  /** argv[0] when it should differ from `file` (a program run from /proc/self/fd/N). */
  argv0?: string;
  /**
   * cgroup.procs files the process joins before it executes `file` (through native/cgexec.c), so
   * it and everything it forks start inside those cgroups. Native backend only: see
   * canJoinCgroupsAtSpawn(). If any cannot be joined, `file` never runs (exit 126).
   */
  joinCgroups?: string[];
  /**
   * Open fds the process keeps, under the same numbers (e.g. a lock it must go on holding after
   * the server is gone). Native backend only.
   */
  inheritFds?: number[];
  /**
   * One more pipe, its write end at the process's fd 3 (an OCI runtime's `--preserve-fds=1`
   * hands it to the sandbox's init, which reports the command's exit and rusage on it).
   */
  reportPipe?: boolean;
  /** Force a backend (tests); default: native when the addon is loaded. */
  backend?: "native" | "node";
}

/** Starts `file` (looked up on PATH). The native backend throws when it cannot be started. */
export function launch(file: string, args: readonly string[], o: LaunchOptions = {}): Proc {
  const sys = o.backend === "node" ? null : nativeSys();
  if (o.backend === "native" && sys === null) throw new Error("native addon not available");
  if (o.inheritFds !== undefined && o.inheritFds.length > 0 && sys === null)
    throw new Error("inheriting fds needs the native addon");
  if (o.joinCgroups !== undefined && (sys === null || !existsSync(CGEXEC)))
    throw new Error("joining cgroups at spawn needs the native addon and its cgexec helper");
  return sys === null ? new NodeProc(file, args, o) : new NativeProc(sys, file, args, o);
}

/** Whether launch() can start processes inside given cgroups (`joinCgroups`). */
export function canJoinCgroupsAtSpawn(): boolean {
  return nativeSys() !== null && existsSync(CGEXEC);
}

const SEALED_FD = /^\/proc\/self\/fd\/(\d+)$/;

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** Field 22 of /proc/PID/stat, or null when it cannot be read. */
function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return start !== undefined && /^\d+$/.test(start) ? start : null;
  } catch {
    return null;
  }
}

function envList(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out.push(`${k}=${v}`);
  return out;
}

class NativeProc implements Proc {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly report: Readable | null;
  readonly exited: Promise<ProcExit>;
  readonly startTime: string | null;
  private done = false;

  constructor(
    sys: NonNullable<ReturnType<typeof nativeSys>>,
    file: string,
    args: readonly string[],
    o: LaunchOptions,
  ) {
    let settle: (e: ProcExit) => void = () => undefined;
    this.exited = new Promise((r) => {
      settle = r;
    });
    let exe = file;
    let argv = [o.argv0 ?? file, ...args];
    const inherit: number[] = [...(o.inheritFds ?? [])];
    if (o.joinCgroups !== undefined) {
      // -k: the report pipe at fd 3 survives the helper's close-on-exec sweep.
      argv = [CGEXEC, ...(o.reportPipe === true ? ["-k"] : []), ...o.joinCgroups, "--", file, ...argv];
      exe = CGEXEC;
      // A sealed copy (/proc/self/fd/N) must survive the helper's own exec.
      const fd = SEALED_FD.exec(file)?.[1];
      if (fd !== undefined) inherit.push(Number(fd));
    }
    const r = sys.spawn(
      exe,
      argv,
      envList(o.env ?? process.env),
      o.cwd ?? null,
      o.stdin === "pipe",
      o.detached === true,
      (code, sig) => {
        this.done = true;
        settle({ code, signal: sig === null ? null : (SIGNAL_NAMES.get(sig) ?? "SIGKILL") });
      },
      inherit,
      o.reportPipe === true,
    );
    this.pid = r.pid;
    this.startTime = r.startTime;
    this.report = r.report < 0 ? null : new net.Socket({ fd: r.report, readable: true, writable: false });
    // net.Socket over a pipe fd is a libuv pipe handle: non-blocking, no thread-pool reads.
    this.stdout = new net.Socket({ fd: r.stdout, readable: true, writable: false });
    this.stderr = new net.Socket({ fd: r.stderr, readable: true, writable: false });
    this.stdin = r.stdin < 0 ? null : new net.Socket({ fd: r.stdin, readable: false, writable: true });
  }

  get running(): boolean {
    return !this.done;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    // Until reaped the pid is ours (a zombie at worst), so it cannot name another process.
    if (this.done) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }
}

class NodeProc implements Proc {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly report: Readable | null;
  readonly exited: Promise<ProcExit>;
  readonly startTime: string | null;
  private readonly child: ChildProcess;

  constructor(file: string, args: readonly string[], o: LaunchOptions) {
    const child = spawn(file, args, {
      ...(o.argv0 === undefined ? {} : { argv0: o.argv0 }),
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: [
        o.stdin === "pipe" ? "pipe" : "ignore",
        "pipe",
        "pipe",
        ...(o.reportPipe === true ? ["pipe" as const] : []),
      ],
      detached: o.detached === true,
    });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      // Spawn failures (ENOENT) come as 'error' with no 'exit'.
      child.once("error", (error) => {
        if (child.pid === undefined) resolve({ code: 127, signal: null, error });
      });
    });
    this.pid = child.pid ?? -1;
    // libuv reaps on the event loop, never during this synchronous constructor.
    this.startTime = child.pid === undefined ? null : procStartTime(child.pid);
    this.stdin = child.stdin;
    this.stdout = child.stdout as Readable;
    this.stderr = child.stderr as Readable;
    this.report = o.reportPipe === true ? (child.stdio[3] as Readable) : null;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.running) this.child.kill(signal);
  }
}
