// Handle for an asynchronous operation. Waiting follows the event stream to `completion` and then reads
// the stored document once; if the event stream is unavailable (400/404/405/406) it polls instead, like
// the official clients (contree-api.md 6, CONTREE-CLIENT `wait_operation`).

import type { ContreeApi } from "./api.js";
import { Deadline } from "./deadline.js";
import { isContreeError, OperationFailedError, ProtocolError } from "./errors.js";
import { type EventStreamOptions, isTerminal, streamEvents } from "./events.js";
import type { RequestOptions } from "./http.js";
import type { ImageHandle } from "./image-handle.js";
import { sleep } from "./retry.js";
import type { OperationEvent, OperationKind, OperationResponse } from "./types.js";

export interface WaitOptions {
  signal?: AbortSignal;
  /** Give up waiting after this many ms (TimeoutError). Default: no limit. */
  timeoutMs?: number;
  /** Cancel the operation when the wait times out or is aborted. Default false. */
  cancelOnAbort?: boolean;
}

const EVENTS_UNAVAILABLE = new Set([400, 404, 405, 406]);

export abstract class OperationHandle<T> {
  private memo: Promise<T> | undefined;

  constructor(
    protected readonly api: ContreeApi,
    /** Operation UUID. */
    readonly id: string,
    readonly kind: OperationKind,
  ) {}

  /** Converts the terminal, successful operation document into the handle's result type. */
  protected abstract toResult(doc: OperationResponse): T | Promise<T>;

  /** Current operation document (GET /v1/operations/{id}). */
  status(opts?: RequestOptions): Promise<OperationResponse> {
    return this.api.getOperation(this.id, opts);
  }

  /** The event log as an async iterator: replay plus live events, resumed across dropped connections. */
  events(opts: EventStreamOptions = {}): AsyncGenerator<OperationEvent, void, undefined> {
    return streamEvents(this.api, this.id, opts);
  }

  /** DELETE /v1/operations/{id}. ConflictError if it already finished. */
  cancel(opts?: RequestOptions): Promise<void> {
    return this.api.cancelOperation(this.id, opts);
  }

  /**
   * Waits until the operation is terminal and returns its result. Throws OperationFailedError when it
   * ended FAILED or CANCELLED (a non-zero exit code of a run is not a failure).
   */
  async wait(opts: WaitOptions = {}): Promise<T> {
    const doc = await this.waitTerminal(opts);
    if (doc.status !== "SUCCESS") throw new OperationFailedError(doc);
    return this.toResult(doc);
  }

  /** `wait()` without options, shared by all callers (one event stream however often it is called). */
  result(): Promise<T> {
    this.memo ??= this.wait();
    return this.memo;
  }

  /** Waits for a terminal status and returns the document, whatever the status. */
  async waitTerminal(opts: WaitOptions = {}): Promise<OperationResponse> {
    const deadline = new Deadline(opts.signal, opts.timeoutMs, `waiting for operation ${this.id}`);
    try {
      try {
        for await (const event of this.events({ signal: deadline.signal })) {
          if (event.type === "completion") break;
        }
      } catch (e) {
        if (!(isContreeError(e) && e.status !== undefined && EVENTS_UNAVAILABLE.has(e.status))) throw e;
      }
      return await this.poll(deadline);
    } catch (e) {
      const reason = deadline.reason;
      if (reason) {
        if (opts.cancelOnAbort) await this.cancel().catch(() => undefined);
        throw reason;
      }
      throw e;
    } finally {
      deadline.dispose();
    }
  }

  /** The stored document can trail the `completion` event by a moment; poll with backoff until terminal. */
  private async poll(deadline: Deadline): Promise<OperationResponse> {
    for (let attempt = 0; ; attempt++) {
      const doc = await this.api.getOperation(this.id, { signal: deadline.signal });
      if (isTerminal(doc.status)) return doc;
      await sleep(Math.min(5000, 100 * 2 ** attempt), deadline.signal);
    }
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
