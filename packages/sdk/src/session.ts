// A session: a current image that each run starts from and then moves to, like the official CLI's
// `contree use` + `contree run`. Images are immutable, so every step is a checkpoint: `checkout` goes
// back to any of them, `fork` makes independent sessions from the current one. Nothing here lives on
// the server; a session is just the order in which this process ran things.

import { isUuid } from "./api.js";
import type { Images } from "./client.js";
import { InvalidArgumentError, isCommandFailed } from "./errors.js";
import type { ImageHandle, RunOptions } from "./image-handle.js";
import type { WaitOptions } from "./operation-handle.js";
import { printAs } from "./printable.js";
import type { RunResult } from "./run-operation.js";
import type { OperationStatus } from "./types.js";

/** One checkpoint: step 0 is where the session started, each run adds one. */
export interface SessionStep {
  /** Position in `history` (what `checkout(index)` takes). */
  index: number;
  /** The command of the step; null for step 0. */
  command: string | readonly string[] | null;
  /** The image the step ran from; null for step 0. */
  from: ImageHandle | null;
  /** The image after the step (the run's result; `from` again for a disposable or unchanged run). */
  image: ImageHandle;
  /** The result, without the output (kept small: a long session holds many steps). */
  result: SessionStepResult | null;
}

export interface SessionStepResult {
  operationId: string;
  status: OperationStatus;
  exitCode: number;
  /** -1 when the process was not killed by a signal. */
  signal: number;
  timedOut: boolean;
  /** Seconds. */
  duration: number;
  /** The run made a new image (false: disposable, or nothing changed). */
  changed: boolean;
}

export type SessionRunOptions = RunOptions & WaitOptions;

export interface SessionOptions {
  /** Options every run of the session starts from (a run's own options win; `env` maps are merged). */
  defaults?: SessionRunOptions;
}

export class Session {
  readonly #images: Images;
  #current: ImageHandle;
  readonly #steps: SessionStep[];
  readonly #defaults: SessionRunOptions;
  /** Runs of one session go one after the other: each starts where the previous one ended. */
  #queue: Promise<unknown> = Promise.resolve();

  /** @internal Use `client.session(image)`. */
  constructor(
    images: Images,
    image: ImageHandle,
    options: SessionOptions = {},
    history?: readonly SessionStep[],
  ) {
    this.#images = images;
    this.#current = image;
    this.#defaults = options.defaults ?? {};
    this.#steps = history
      ? [...history]
      : [Object.freeze({ index: 0, command: null, from: null, image, result: null })];
  }

  /** The current image: where the next run starts. */
  get image(): ImageHandle {
    return this.#current;
  }

  /** Every step so far, oldest first (a fork starts with a copy of its parent's). */
  get history(): readonly SessionStep[] {
    return [...this.#steps];
  }

  /**
   * Runs `command` from the current image, waits, records the step and moves the current image to
   * the result (a disposable or unchanged run keeps it). Runs of one session queue up; use `fork()`
   * for parallel ones. With `check: true` a failed command throws CommandFailedError and the current
   * image stays where it was (the failed step is still in `history`, so it can be checked out).
   */
  run(command: string | readonly string[], opts: SessionRunOptions = {}): Promise<RunResult> {
    const merged: SessionRunOptions = { ...this.#defaults, ...opts };
    if (this.#defaults.env || opts.env) merged.env = { ...this.#defaults.env, ...opts.env };
    const next = this.#queue.then(() => this.step(command, merged));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  private async step(command: string | readonly string[], opts: SessionRunOptions): Promise<RunResult> {
    const from = this.#current;
    let result: RunResult;
    let failed: unknown;
    try {
      result = await from.runAndWait(command, opts);
    } catch (e) {
      if (!isCommandFailed(e)) throw e;
      result = e.result as RunResult;
      failed = e;
    }
    const image = result.image ?? from;
    // Frozen: `history` hands these out, and a caller's edit must not move a checkpoint.
    this.#steps.push(
      Object.freeze({
        index: this.#steps.length,
        command: typeof command === "string" ? command : Object.freeze([...command]),
        from,
        image,
        result: Object.freeze({
          operationId: result.operationId,
          status: result.status,
          exitCode: result.exitCode,
          signal: result.signal,
          timedOut: result.timedOut,
          duration: result.duration,
          changed: image.uuid !== from.uuid,
        }),
      }),
    );
    if (failed) throw failed;
    this.#current = image;
    return result;
  }

  /**
   * Moves the current image back (or anywhere): a step index of `history`, an image handle or an
   * image UUID. Later runs start there; the history keeps every step.
   */
  checkout(target: number | ImageHandle | string): ImageHandle {
    if (typeof target === "number") {
      const step = this.#steps[target];
      if (!Number.isInteger(target) || step === undefined) {
        throw new InvalidArgumentError(
          `checkout(${target}): no such step (history has steps 0..${this.#steps.length - 1})`,
        );
      }
      this.#current = step.image;
    } else if (typeof target === "string") {
      if (!isUuid(target)) {
        throw new InvalidArgumentError(
          `checkout("${target}"): give a step index, an image handle or an image UUID (resolve tags with client.images.get)`,
        );
      }
      const uuid = target.toLowerCase();
      const known = this.#steps.find((s) => s.image.uuid === uuid)?.image;
      this.#current = known ?? this.#images.handle(uuid);
    } else {
      this.#current = target;
    }
    return this.#current;
  }

  /** `n` independent sessions starting at the current image (each with a copy of this history). */
  fork(n: number): Session[] {
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`fork(n): n must be a positive whole number, got ${String(n)}`);
    }
    return Array.from(
      { length: n },
      () => new Session(this.#images, this.#current, { defaults: this.#defaults }, this.#steps),
    );
  }

  /** What printing shows: the current image and the number of steps. */
  toJSON(): { image: string; steps: number } {
    return { image: this.#current.uuid, steps: this.#steps.length };
  }
}

printAs(Session, "Session");
