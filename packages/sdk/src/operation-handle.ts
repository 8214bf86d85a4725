// Handle for an asynchronous operation. Waiting follows the event stream to `completion` and then reads
// the stored document once; if the event stream is unavailable (400/404/405/406) it polls instead, like
// the official clients (contree-api.md 6, CONTREE-CLIENT `wait_operation`).

import type { ContreeApi } from "./api.js";
import { Deadline } from "./deadline.js";
import { waitLimitMs } from "./defaults.js";
import { isContreeError, OperationFailedError, ProtocolError } from "./errors.js";
import { type EventStreamOptions, isTerminal, streamEvents } from "./events.js";
import type { RequestOptions } from "./http.js";
import type { ImageHandle } from "./image-handle.js";
import { type OutputCallbacks, OutputDispatcher } from "./output.js";
import { printAs } from "./printable.js";
import { sleep } from "./retry.js";
import type { OperationEvent, OperationKind, OperationResponse } from "./types.js";

export interface WaitOptions extends OutputCallbacks {
  signal?: AbortSignal;
  /**
   * Give up waiting after this many ms: the call throws `TimeoutError` (the operation goes on unless
   * `cancelOnAbort`). Default: no limit (the sandbox's own `timeoutSec` ends a run).
   */
  waitTimeoutMs?: number;
  /** @deprecated Older name of `waitTimeoutMs`, still honoured. */
  timeoutMs?: number;
  /** Cancel the operation when the wait times out or is aborted. Default false. */
  cancelOnAbort?: boolean;
  /**
   * Throw `CommandFailedError` when the process exits non-zero, is killed by a signal or times out
   * (runs and execs; an import has no exit code). Default false: the exit code is in the result.
   */
  check?: boolean;
}

const EVENTS_UNAVAILABLE = new Set([400, 404, 405, 406]);

export abstract class OperationHandle<T> {
  private memo: Promise<T> | undefined;
  readonly #api: ContreeApi;

  constructor(
    api: ContreeApi,
    /** Operation UUID. */
    readonly id: string,
    readonly kind: OperationKind,
  ) {
    this.#api = api;
  }

  protected get api(): ContreeApi {
    return this.#api;
  }

  /** Converts the terminal, successful operation document into the handle's result type. */
  protected abstract toResult(doc: OperationResponse): T | Promise<T>;

  /** Options the handle was started with (a run's `check` and callbacks); a wait's own options win. */
  protected waitDefaults(): WaitOptions {
    return {};
  }

  /** Checks a successful result (`check: true`); runs override it. */
  protected checkResult(_result: T): void {}

  /** Current operation document (GET /v1/operations/{id}). */
  status(opts?: RequestOptions): Promise<OperationResponse> {
    return this.#api.getOperation(this.id, opts);
  }

  /** The event log as an async iterator: replay plus live events, resumed across dropped connections. */
  events(opts: EventStreamOptions = {}): AsyncGenerator<OperationEvent, void, undefined> {
    return streamEvents(this.#api, this.id, opts);
  }

  /** DELETE /v1/operations/{id}. ConflictError if it already finished. */
  cancel(opts?: RequestOptions): Promise<void> {
    return this.#api.cancelOperation(this.id, opts);
  }

  /**
   * Waits until the operation is terminal and returns its result. Throws OperationFailedError when it
   * ended FAILED or CANCELLED; with `check`, CommandFailedError when the command failed (a non-zero
   * exit code is otherwise a result, not an error).
   */
  async wait(opts: WaitOptions = {}): Promise<T> {
    const o = { ...this.waitDefaults(), ...opts };
    const doc = await this.waitTerminal(o);
    if (doc.status !== "SUCCESS") throw new OperationFailedError(doc);
    const result = await this.toResult(doc);
    if (o.check) this.checkResult(result);
    return result;
  }

  /** `wait()` without options, shared by all callers (one event stream however often it is called). */
  result(): Promise<T> {
    this.memo ??= this.wait();
    return this.memo;
  }

  /** Waits for a terminal status and returns the document, whatever the status. */
  async waitTerminal(opts: WaitOptions = {}): Promise<OperationResponse> {
    const o = { ...this.waitDefaults(), ...opts };
    const deadline = new Deadline(o.signal, waitLimitMs(o), `waiting for operation ${this.id}`);
    const output = new OutputDispatcher(o, 1);
    try {
      let streamed = false;
      try {
        for await (const event of this.events({ signal: deadline.signal })) {
          streamed = true;
          await output.push(event);
          if (event.type === "completion") break;
        }
      } catch (e) {
        if (!(isContreeError(e) && e.status !== undefined && EVENTS_UNAVAILABLE.has(e.status))) throw e;
      }
      const doc = await this.poll(deadline);
      await output.finish(streamed ? undefined : this.finalOutput(doc));
      return doc;
    } catch (e) {
      const reason = deadline.reason;
      if (reason) {
        if (o.cancelOnAbort) await this.cancel().catch(() => undefined);
        throw reason;
      }
      throw e;
    } finally {
      deadline.dispose();
    }
  }

  /** The main process's captured output, for callbacks when the server has no event stream. */
  protected finalOutput(_doc: OperationResponse): { stdout: string; stderr: string } | undefined {
    return undefined;
  }

  /** The stored document can trail the `completion` event by a moment; poll with backoff until terminal. */
  private async poll(deadline: Deadline): Promise<OperationResponse> {
    for (let attempt = 0; ; attempt++) {
      const doc = await this.#api.getOperation(this.id, { signal: deadline.signal });
      if (isTerminal(doc.status)) return doc;
      await sleep(Math.min(5000, 100 * 2 ** attempt), deadline.signal);
    }
  }

  /** What printing shows: the operation's id and kind. */
  toJSON(): { id: string; kind: OperationKind } {
    return { id: this.id, kind: this.kind };
  }
}

export function resultImageUuid(doc: OperationResponse): string | null {
  return doc.result?.image ?? doc.result_image_uuid ?? null;
}

/** `client.images.import()` handle; `wait()` gives the imported image. */
export class ImportOperation extends OperationHandle<ImageHandle> {
  constructor(
    api: ContreeApi,
    id: string,
    private readonly makeImage: (uuid: string) => ImageHandle,
  ) {
    super(api, id, "image_import");
  }

  protected toResult(doc: OperationResponse) {
    const uuid = resultImageUuid(doc);
    if (!uuid) throw new ProtocolError(`import ${this.id} succeeded without a result image`);
    return this.makeImage(uuid);
  }
}

printAs(ImportOperation, "ImportOperation");
