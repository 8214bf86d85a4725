/**
 * A few long-lived worker threads that run `matchFiles`. A job that overruns its time is
 * stopped by terminating its worker (V8 interrupts a running regex), and a fresh worker
 * replaces it on the next demand; the event loop of the server never runs a user regex.
 */
import { Worker } from "node:worker_threads";
import { resourceExhausted } from "../core/errors.js";
import type { FileMatches, MatchJob } from "./grep-matcher.js";

// Built, this module is dist/inspect/regex-worker-pool.js and the worker its sibling .js. Run from
// sources (tsx, vitest) the worker is TypeScript, which a worker thread loads only after tsx's
// loader is registered in it (Node 20 ignores `--import` in a worker's execArgv).
const FROM_SOURCES = import.meta.url.endsWith(".ts");
const WORKER_FILE = new URL(FROM_SOURCES ? "./regex-worker.ts" : "./regex-worker.js", import.meta.url);
const TS_BOOT = `const { workerData } = require("node:worker_threads");
import(workerData.tsx).then((tsx) => tsx.register()).then(() => import(workerData.file));`;

function startWorker(): Worker {
  if (!FROM_SOURCES) return new Worker(WORKER_FILE);
  const tsx = import.meta.resolve("tsx/esm/api");
  return new Worker(TS_BOOT, { eval: true, workerData: { tsx, file: WORKER_FILE.href } });
}

export type RunOutcome = { kind: "done"; result: FileMatches[] } | { kind: "timeout" };

export interface WorkerLease {
  /** Runs a job; on timeout the worker is terminated and the lease is spent. */
  run(job: MatchJob, timeoutMs: number): Promise<RunOutcome>;
  release(): void;
}

export class RegexWorkerPool {
  private readonly idle: Worker[] = [];
  private live = 0;
  private readonly waiters: Array<(w: Worker | null) => void> = [];
  private closed = false;

  constructor(
    private readonly size = 2,
    private readonly maxWaiting = 64,
  ) {}

  /** Waits (up to `timeoutMs`) for a worker; null when none became free in time. */
  async acquire(timeoutMs: number): Promise<WorkerLease | null> {
    const w = await this.take(timeoutMs);
    return w === null ? null : this.lease(w);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.waiters.splice(0)) wake(null);
    await Promise.all(this.idle.splice(0).map((w) => w.terminate()));
  }

  private take(timeoutMs: number): Promise<Worker | null> {
    const w = this.idle.pop();
    if (w) return Promise.resolve(w);
    if (this.live < this.size) {
      this.live++;
      return Promise.resolve(this.spawn());
    }
    if (this.waiters.length >= this.maxWaiting)
      throw resourceExhausted("too many searches in progress", { retryAfter: 1 });
    return new Promise((resolve) => {
      const wake = (got: Worker | null) => {
        clearTimeout(timer);
        resolve(got);
      };
      const timer = setTimeout(
        () => {
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(null);
        },
        Math.max(0, timeoutMs),
      );
      this.waiters.push(wake);
    });
  }

  private spawn(): Worker {
    const w = startWorker();
    w.unref();
    w.on("error", () => {
      // A crashed worker is replaced on demand; the pending job sees the exit.
    });
    return w;
  }

  private give(w: Worker | null): void {
    if (w === null) {
      this.live--;
      if (this.waiters.length > 0 && !this.closed) {
        this.live++;
        this.waiters.shift()!(this.spawn());
      }
      return;
    }
    const next = this.waiters.shift();
    if (next) next(w);
    else if (this.closed) void w.terminate();
    else this.idle.push(w);
  }

  private lease(w: Worker): WorkerLease {
    let worker: Worker | null = w;
    let released = false;
    return {
      run: (job, timeoutMs) =>
        new Promise<RunOutcome>((resolve, reject) => {
          const current = worker;
          if (current === null) return resolve({ kind: "timeout" });
          const done = () => {
            clearTimeout(timer);
            current.off("message", onMessage);
            current.off("exit", onExit);
          };
          const onMessage = (m: { ok: boolean; result?: FileMatches[]; error?: string }) => {
            done();
            if (m.ok && m.result) resolve({ kind: "done", result: m.result });
            else reject(new Error(`grep worker failed: ${m.error ?? "unknown"}`));
          };
          const onExit = () => {
            done();
            worker = null;
            reject(new Error("grep worker exited"));
          };
          const timer = setTimeout(
            () => {
              done();
              worker = null;
              void current.terminate();
              resolve({ kind: "timeout" });
            },
            Math.max(0, timeoutMs),
          );
          current.on("message", onMessage);
          current.on("exit", onExit);
          current.postMessage(
            job,
            job.files.map((f) => f.data.buffer as ArrayBuffer),
          );
        }),
      release: () => {
        if (released) return;
        released = true;
        this.give(worker);
      },
    };
  }
}
