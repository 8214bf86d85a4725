/**
 * Starts the real server process from sources on 127.0.0.1 with a throw-away data dir and waits
 * until `GET /v1/whoami` answers. `stop()` sends SIGTERM (SIGKILL after a grace period), then
 * removes the data dir unless it was given by the caller.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root: `tsx` resolves from its node_modules. */
export const REPO_ROOT = resolve(here, "../../../..");
export const DAEMON_ENTRY = join(here, "daemon-entry.ts");
export const TEST_BOOTSTRAP_TOKEN = "e2e-bootstrap-token-0123456789abcdef";

export interface DaemonOptions {
  /** Extra environment (CONTREE_* from the parent environment are dropped first). */
  env?: Record<string, string>;
  /** Extra `serve` arguments; `--data-dir` and `--listen` are added unless present. */
  args?: string[];
  /** Reuse a data dir (it is then not removed on stop). */
  dataDir?: string;
  /** Bootstrap token; `null` starts without one so the server generates and prints it. */
  token?: string | null;
  /** How long to wait for the first whoami answer. */
  readyTimeoutMs?: number;
}

export interface Daemon {
  /** Base URL including the path prefix, e.g. http://127.0.0.1:41234 */
  url: string;
  /** A working admin token (the bootstrap one, or the generated one when printed). */
  token: string;
  dataDir: string;
  proc: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Environment without the caller's CONTREE_* settings, so tests are hermetic. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CONTREE_")) env[k] = v;
  return { ...env, CONTREE_LOG_LEVEL: "warn", ...extra };
}

const DIST_BIN = join(REPO_ROOT, "packages", "server", "bin", "contree-server.js");
const DIST_MAIN = join(REPO_ROOT, "packages", "server", "dist", "cli", "main.js");
const SRC_DIR = join(REPO_ROOT, "packages", "server", "src");

/** True when the build is newer than every source file (the test script builds first). */
function distIsFresh(): boolean {
  try {
    const built = statSync(DIST_MAIN).mtimeMs;
    const stack = [SRC_DIR];
    while (stack.length > 0) {
      const dir = stack.pop() as string;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) stack.push(p);
        else if (statSync(p).mtimeMs > built) return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}

let fresh: boolean | undefined;

/** The command line that runs the CLI: the built one when it is current (fast start), else from sources. */
export function cliCommand(args: string[]): { cmd: string; argv: string[] } {
  fresh ??= distIsFresh();
  if (fresh) return { cmd: process.execPath, argv: [DIST_BIN, ...args] };
  return { cmd: process.execPath, argv: ["--import", "tsx", DAEMON_ENTRY, ...args] };
}

export async function startDaemon(o: DaemonOptions = {}): Promise<Daemon> {
  const ownDir = o.dataDir === undefined;
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), "contree-e2e-")));
  const args = ["serve", ...(o.args ?? [])];
  if (!args.includes("--data-dir")) args.push("--data-dir", dataDir);
  if (!args.includes("--listen")) args.push("--listen", "127.0.0.1:0");
  const token = o.token === undefined ? TEST_BOOTSTRAP_TOKEN : o.token;
  const env = cleanEnv({
    ...(token === null ? {} : { CONTREE_BOOTSTRAP_TOKEN: token }),
    // The test registries listen on 127.0.0.1 (see TEST_PRIVATE_REGISTRIES in in-process.ts).
    CONTREE_PRIVATE_REGISTRIES: "127.0.0.0/8",
    ...o.env,
  });

  const { cmd, argv } = cliCommand(args);
  const proc = spawn(cmd, argv, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const cap = 4 * 1024 * 1024;
  proc.stdout?.on("data", (c: Buffer) => {
    if (out.length < cap) out += c.toString();
  });
  proc.stderr?.on("data", (c: Buffer) => {
    if (err.length < cap) err += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    proc.once("exit", (code, signal) => res({ code, signal }));
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });

  const cleanup = async () => {
    if (!done) {
      proc.kill("SIGKILL");
      await exited;
    }
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + (o.readyTimeoutMs ?? 90_000);
    let url: string | undefined;
    let adminToken = token ?? undefined;
    while (Date.now() < deadline) {
      if (done)
        throw new Error(
          `daemon exited before it was ready (${JSON.stringify(await exited)})\nstdout:\n${out}\nstderr:\n${err}`,
        );
      url ??= /listening on (http:\/\/\S+)/.exec(out)?.[1];
      adminToken ??= /shown once, store it now\):\s*\n\s*(\S+)/.exec(out)?.[1];
      if (url) {
        try {
          const res = await fetch(`${url}/v1/whoami`, {
            headers: { authorization: `Bearer ${adminToken ?? "none"}` },
          });
          await res.arrayBuffer();
          if (res.status === 200 || (res.status === 401 && token === null && adminToken === undefined)) break;
        } catch {
          // not accepting yet
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!url) throw new Error(`daemon did not report its address in time\nstdout:\n${out}\nstderr:\n${err}`);
    const pid = proc.pid as number;
    let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
    return {
      url,
      token: adminToken ?? "",
      dataDir,
      proc,
      pid,
      stdout: () => out,
      stderr: () => err,
      exited,
      stop(signal: NodeJS.Signals = "SIGTERM") {
        stopping ??= (async () => {
          if (!done) {
            proc.kill(signal);
            const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
            await exited;
            clearTimeout(timer);
          }
          if (ownDir) await rm(dataDir, { recursive: true, force: true });
          return exited;
        })();
        return stopping;
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Runs a CLI command (admin commands, or a `serve` expected to fail) to completion. */
export function runCli(
  args: string[],
  o: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { cmd, argv } = cliCommand(args);
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(cmd, argv, {
      cwd: REPO_ROOT,
      env: cleanEnv(o.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(
        new Error(`contree-server ${args.join(" ")} did not finish\nstdout:\n${stdout}\nstderr:\n${stderr}`),
      );
    }, o.timeoutMs ?? 120_000);
    proc.on("error", reject);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Resident and peak memory of a process, in bytes, from /proc/<pid>/status. */
export async function memoryOf(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}
