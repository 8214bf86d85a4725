// Starts the real ConTree server for end-to-end SDK tests:
//   CONTREE_BOOTSTRAP_TOKEN=T node packages/server/bin/contree-server.js serve --data-dir D --listen 127.0.0.1:P
// then waits until GET /v1/whoami answers 200 with that token.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
export const SERVER_BIN = join(REPO_ROOT, "packages/server/bin/contree-server.js");

export interface StartServerOptions {
  /** Default: a fresh temp dir, removed by stop(). */
  dataDir?: string;
  token?: string;
  port?: number;
  /** Extra environment for the server process. */
  env?: Record<string, string>;
  /** How long to wait for whoami. Default 60 s. */
  readyTimeoutMs?: number;
}

export interface RunningServer {
  /** `http://127.0.0.1:PORT` (the SDK appends /v1). */
  url: string;
  token: string;
  dataDir: string;
  process: ChildProcess;
  /** Everything the server wrote so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

export async function startServer(opts: StartServerOptions = {}): Promise<RunningServer> {
  const token = opts.token ?? `sdk-test-${Math.random().toString(36).slice(2)}`;
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "contree-sdk-e2e-")));
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  let out = "";
  const child = spawn(
    process.execPath,
    [SERVER_BIN, "serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...opts.env, CONTREE_BOOTSTRAP_TOKEN: token },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killer);
    }
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  let lastError = "";
  try {
    while (true) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `contree-server exited (${child.exitCode ?? child.signalCode}) before ready:\n${out}`,
        );
      }
      try {
        const res = await fetch(`${url}/v1/whoami`, {
          headers: { Authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(2000),
        });
        await res.body?.cancel();
        if (res.status === 200) break;
        lastError = `whoami answered ${res.status}`;
      } catch (e) {
        lastError = String(e);
      }
      if (Date.now() > deadline) throw new Error(`contree-server not ready: ${lastError}\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, token, dataDir, process: child, output: () => out, stop };
}
