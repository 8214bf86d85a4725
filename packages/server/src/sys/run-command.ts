/** Running host tools (mount, ip, iptables, runtimes) to completion with bounded captured output. */
import { launch } from "./proc.js";

export interface CommandResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  cwd?: string;
  /** argv[0] when `file` is not the program's own name. */
  argv0?: string;
  input?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /**
   * Settle when the program exits, without waiting for its output pipes to close (what it
   * printed so far is kept): for commands that leave a process holding them, like a runtime's
   * `create`.
   */
  untilExit?: boolean;
}

/** Tools we call print little; anything beyond this is noise we do not want to hold in memory. */
const MAX_CAPTURE = 256 * 1024;

export function runCommand(
  file: string,
  args: readonly string[],
  o: CommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    o.signal?.throwIfAborted();
    const child = launch(file, args, {
      ...(o.cwd === undefined ? {} : { cwd: o.cwd }),
      ...(o.argv0 === undefined ? {} : { argv0: o.argv0 }),
      env: o.env ?? process.env,
      stdin: o.input === undefined ? "ignore" : "pipe",
    });
    const kill = () => child.kill("SIGKILL");
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(kill, o.timeoutMs);
    o.signal?.addEventListener("abort", kill, { once: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout.on("data", (b: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr.on("data", (b: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(b);
      errLen += b.length;
    });
    if (o.input !== undefined) {
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(o.input);
    }
    // Like child_process's 'close': exited, and both pipes drained (unless untilExit).
    const closed = (s: NodeJS.ReadableStream) =>
      o.untilExit ? Promise.resolve() : new Promise((r) => s.once("close", r));
    void Promise.all([child.exited, closed(child.stdout), closed(child.stderr)]).then(([r]) => {
      if (o.untilExit) {
        child.stdout.destroy();
        child.stderr.destroy();
      }
      if (timer !== undefined) clearTimeout(timer);
      o.signal?.removeEventListener("abort", kill);
      if (r.error) {
        reject(r.error);
        return;
      }
      resolve({
        code: r.code ?? -1,
        signal: r.signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}
