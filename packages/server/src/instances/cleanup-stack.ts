import type { Logger } from "../observability/logger.js";

/** One undo step on a CleanupStack; it can be run early (its error then reaches the caller). */
export interface CleanupStep {
  /** Runs the step now unless it already succeeded; a failure leaves it for the stack's final run. */
  run(): Promise<void>;
}

interface Entry {
  name: string;
  undo: () => Promise<unknown>;
  done: boolean;
  running: Promise<void> | null;
}

/**
 * What a run holds, undone in reverse order of acquisition (like the OCI driver's start-up
 * cleanup and containerd's deferred undo): every resource is pushed right after it exists, so
 * no failure path needs to know what was already held. Each step succeeds at most once; the
 * final run() logs failures and goes on, and running the stack again does nothing.
 */
export class CleanupStack {
  private readonly entries: Entry[] = [];

  constructor(
    private readonly logger: Pick<Logger, "warn">,
    private readonly context: Record<string, unknown> = {},
  ) {}

  push(name: string, undo: () => Promise<unknown>): CleanupStep {
    const e: Entry = { name, undo, done: false, running: null };
    this.entries.push(e);
    return { run: () => this.runEntry(e) };
  }

  private runEntry(e: Entry): Promise<void> {
    if (e.done) return Promise.resolve();
    e.running ??= e.undo().then(
      () => {
        e.done = true;
      },
      (err: unknown) => {
        e.running = null;
        throw err;
      },
    );
    return e.running;
  }

  /** Undoes every step not done yet, last pushed first; never throws. */
  async run(): Promise<void> {
    while (this.entries.length > 0) {
      const e = this.entries.pop() as Entry;
      await this.runEntry(e).catch((err: unknown) =>
        this.logger.warn({ err, ...this.context, step: e.name }, "cleanup step failed"),
      );
    }
  }
}
