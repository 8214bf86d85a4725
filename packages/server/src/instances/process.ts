import type { Readable, Writable } from "node:stream";
import type { ExitStatus, ProcessHandle, ResourceStats, Sandbox } from "../runtime/runtime-driver.js";

/** How a process ended, as its real wait status says (oomKilled only where the sandbox knows). */
export type ProcessExit = Omit<ExitStatus, "oomKilled"> & { oomKilled?: boolean };

/**
 * One process of an instance as the supervisor drives it, whatever started it: the sandbox's
 * main process (spid 1) or one exec'd into it (spid ≥ 2). Like containerd's `process.Process`,
 * shared by its init and exec processes. A driver's ProcessHandle is one as it is.
 */
export interface Process {
  /** The pid events and results report. */
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves with the real wait status once the process has exited. */
  wait(): Promise<ProcessExit>;
  /** Delivers `signal` to the process (resolves once sent, not once it has exited). */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** cgroup accounting, where the process has a cgroup of its own (the main process: the sandbox's). */
  stats?(): Promise<ResourceStats>;
}

/**
 * The sandbox's main process. It is pid 1 in its pid namespace, and signalling it means the
 * whole sandbox: when it exits, the sandbox ends.
 */
export function initProcess(sandbox: Sandbox): Process {
  return {
    pid: 1,
    stdin: sandbox.stdin,
    stdout: sandbox.stdout,
    stderr: sandbox.stderr,
    wait: () => sandbox.wait(),
    kill: (signal) => sandbox.kill(signal),
    stats: () => sandbox.stats(),
  };
}

/** A process exec'd into a running sandbox; it shares the sandbox's cgroup, so it has no stats of its own. */
export function execProcess(handle: ProcessHandle): Process {
  return handle;
}

/** argv of a command: `/bin/sh -c COMMAND ARGS…` in shell mode (the args become $0, $1…). */
export function argvOf(command: string, args: readonly string[], shell: boolean): string[] {
  return shell ? ["/bin/sh", "-c", command, ...args] : [command, ...args];
}
