/** Running host tools (mount, ip, iptables, runtimes) with bounded captured output. */
import { spawn } from "node:child_process";
import { internal } from "../core/errors.js";

export interface CommandResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  cwd?: string;
  input?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/** Tools we call print little; anything beyond this is noise we do not want to hold in memory. */
const MAX_CAPTURE = 256 * 1024;

export function runCommand(
  file: string,
  args: readonly string[],
  o: CommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      signal: o.signal,
      timeout: o.timeoutMs,
      killSignal: "SIGKILL",
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout?.on("data", (b: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr?.on("data", (b: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(b);
      errLen += b.length;
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}

/** Like runCommand but a non-zero exit is an internal error (message without host detail). */
export async function mustRun(
  file: string,
  args: readonly string[],
  what: string,
  o: CommandOptions = {},
): Promise<CommandResult> {
  const r = await runCommand(file, args, o);
  if (r.code !== 0) {
    throw internal(`${what} failed`, {
      cause: new Error(`${file} ${args.join(" ")} → ${r.code ?? r.signal}: ${r.stderr.trim()}`),
    });
  }
  return r;
}
