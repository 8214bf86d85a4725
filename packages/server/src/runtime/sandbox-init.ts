/**
 * The sandbox init (native/init.c): the entry point of every sandboxed process on every driver.
 * It execs the command with a shell's answers (127 not found, 126 not executable, a short
 * message, never the runtime's internals), passes signals on (exec'd processes), reaps orphans
 * (pid 1), and reports the command's exit and `struct rusage` from wait4.
 *
 * Placement: a read-only bind of one shared copy on the bind tmpfs (bind-files.ts), so the
 * sandbox's mountinfo names `/contree-init-<hash>`, never a host path. Its mount point is under
 * /dev: the runtime's own tmpfs there (crun, runc), or for runsc a host tmpfs over
 * `<rootfs>/dev` (gvisor/dev-points.ts): never in the overlay upper, so never in a snapshot.
 *
 * Report channel: crun and runc get a pipe as the runtime's fd 3 (`--preserve-fds=1`), runsc (no
 * such flag in this release) a file in a per-sandbox 64 KiB tmpfs bound at /dev/.contree-io.
 * Either way the command runs as the same user as the init and can write a report of its own:
 * it is parsed as hostile input (bounded, strict), and describes only what the command could
 * influence anyway. cgroup CPU and memory figures stay authoritative.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from "node:fs";
import type { Readable } from "node:stream";
import { INIT } from "../sys/native-sys.js";
import { sharedBindFile } from "./bind-files.js";
import type { ExitStatus, Rusage, TerminalSize } from "./runtime-driver.js";

export const INIT_IN_SANDBOX = "/dev/.contree-init";
/** Directory of report files inside runsc sandboxes. */
export const REPORT_DIR_IN_SANDBOX = "/dev/.contree-io";
/** The report pipe's number in the runtime process and in the sandbox (crun/runc). */
export const REPORT_FD = 3;

const MAX_REPORT = 4096;

let placed: Promise<string | null> | undefined;

/**
 * The host file to bind at INIT_IN_SANDBOX: the shared copy on the bind tmpfs, else the build
 * output itself (its path then shows in crun/runc mountinfo), or null when it is not built.
 */
export function initBinary(): Promise<string | null> {
  placed ??= sharedBindFile(INIT, "contree-init")
    .catch(() => null)
    .then((f) => f ?? builtInit());
  return placed;
}

function builtInit(): string | null {
  try {
    return statSync(INIT).isFile() ? INIT : null;
  } catch {
    return null;
  }
}

/**
 * The process's argv under the init. `report`: "fd:3", a path in the sandbox, or "-". With
 * `tty` the init gives the process a pseudo-terminal of the sandbox's own and relays it over
 * stdio: stdin carries frames (terminal-frames.ts), stdout the terminal's output
 * (native/init-tty.h). `emulateSignals`: the init turns ^C, ^\ and ^Z into signals itself, for
 * a line discipline that does not (gVisor's in this runsc release).
 */
export function initArgs(
  mode: "run" | "exec",
  report: string,
  args: string[],
  tty?: TerminalSize & { emulateSignals?: boolean },
): string[] {
  if (tty === undefined) return [INIT_IN_SANDBOX, mode, report, ...args];
  const size = `${tty.rows}x${tty.cols}${tty.emulateSignals ? "+isig" : ""}`;
  return [INIT_IN_SANDBOX, `${mode}-tty`, report, size, ...args];
}

export function initMount(source: string): {
  destination: string;
  type: string;
  source: string;
  options: string[];
} {
  return { destination: INIT_IN_SANDBOX, type: "bind", source, options: ["rbind", "ro", "nosuid", "nodev"] };
}

interface InitReport {
  exitCode: number;
  signal: number;
  rusage: Rusage;
}

const FIELDS: Array<keyof Rusage> = [
  "utimeUs",
  "stimeUs",
  "maxrssKb",
  "ixrssKb",
  "idrssKb",
  "isrssKb",
  "minflt",
  "majflt",
  "nswap",
  "inblock",
  "oublock",
  "msgsnd",
  "msgrcv",
  "nsignals",
  "nvcsw",
  "nivcsw",
];

/** The last well-formed report line of `text`, or null. */
export function parseInitReport(text: string): InitReport | null {
  const lines = text.slice(0, MAX_REPORT).split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const parts = (lines[i] ?? "").split(" ");
    if (parts[0] !== "contree-init/1" || parts.length !== 3 + FIELDS.length) continue;
    const nums = parts.slice(1).map((p) => (/^-?\d{1,19}$/.test(p) ? Number(p) : Number.NaN));
    if (nums.some((n) => !Number.isSafeInteger(n))) continue;
    const [exitCode = -1, signal = -1] = nums;
    if (exitCode < 0 || exitCode > 255 || signal < -1 || signal === 0 || signal > 64) continue;
    if (nums.slice(2).some((n) => n < 0)) continue;
    const rusage = {} as Rusage;
    FIELDS.forEach((f, k) => {
      rusage[f] = nums[k + 2] ?? 0;
    });
    return { exitCode, signal, rusage };
  }
  return null;
}

/** What a report pipe delivered: `text` settles at the report's line, the pipe's end or `stop()`. */
export interface ReportCollector {
  readonly text: Promise<string>;
  /** Gives up on the pipe (closing our end) and settles `text` with what came so far. */
  stop(): void;
}

/**
 * Collects at most MAX_REPORT bytes of a report pipe (it never fails). The init writes its one
 * line in one write, so the first newline ends it: a sandboxed process that kept a copy of the
 * write end (`/proc/<init>/fd/3`) can neither hold the report back nor our fd open.
 */
export function collectReport(stream: Readable | null): ReportCollector {
  if (stream === null) return { text: Promise.resolve(""), stop: () => undefined };
  let text = "";
  let settle: (t: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => {
    settle = resolve;
  });
  const finish = () => {
    settle(text);
    stream.destroy();
  };
  stream.setEncoding("latin1");
  stream.on("data", (chunk: string) => {
    if (text.length < MAX_REPORT) text += chunk.slice(0, MAX_REPORT - text.length);
    if (text.includes("\n") || text.length >= MAX_REPORT) finish();
  });
  stream.once("end", finish);
  stream.once("error", finish);
  stream.once("close", finish);
  return { text: done, stop: finish };
}

/**
 * A report file written inside a sandbox, read from the host: never following a symlink, never
 * blocking on a FIFO, at most MAX_REPORT bytes, only from a regular file.
 */
export function readReportFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return "";
  }
  try {
    if (!fstatSync(fd).isFile()) return "";
    const buf = Buffer.alloc(MAX_REPORT);
    const n = readSync(fd, buf, 0, MAX_REPORT, 0);
    return buf.subarray(0, n).toString("latin1");
  } catch {
    return "";
  } finally {
    closeSync(fd);
  }
}

/** The exit the host saw, corrected by the init's report when there is one. */
export function withReport(
  seen: Omit<ExitStatus, "oomKilled">,
  report: InitReport | null,
): Omit<ExitStatus, "oomKilled"> {
  if (report === null) return seen;
  return { exitCode: report.exitCode, signal: report.signal, rusage: report.rusage };
}
