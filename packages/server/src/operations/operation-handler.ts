import type {
  OperationCompletion,
  OperationKind,
  OperationRecord,
} from "../metadata/repos/operation-repo.js";

export interface HandlerContext {
  /** Aborted on cancel (reason "cancelled") or server shutdown (reason "shutdown"). */
  signal: AbortSignal;
  /** Appends an event to the operation's log. */
  emit(spid: number, type: string, data: Record<string, unknown>): Promise<void>;
  /** Replaces the stored metadata document (e.g. to publish partial results). */
  setMetadata(metadata: Record<string, unknown>): Promise<void>;
}

/** What a handler reports; the queue stores it and the `completion` event in one transaction. */
export type HandlerOutcome = Omit<OperationCompletion, "status"> & {
  status: "SUCCESS" | "FAILED";
  /** Extra fields of the `completion` event (result_image_uuid, image_size_bytes, ...). */
  completion?: Record<string, unknown>;
  /**
   * Teardown that need not delay the result (unmounts, cgroups, scratch dirs): run after the
   * completion is stored, while the operation still holds its concurrency slot.
   */
  cleanup?: () => Promise<void>;
};

/** Executes one kind of operation. Handlers never throw for expected failures: they return FAILED. */
export interface OperationHandler {
  readonly kind: OperationKind;
  run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome>;
}
