import { isoMicros } from "../core/time.js";
import type { MetadataStore, Repos } from "../metadata/metadata-store.js";
import { TERMINAL_STATUSES } from "../metadata/repos/operation-repo.js";

/** One entry of an operation's log, as the SSE stream sends it. */
export interface OperationEvent {
  id: number;
  ts: string;
  spid: number;
  type: string;
  data: Record<string, unknown>;
}

type Listener = (e: OperationEvent) => void;
/** Hears the events of every operation (metrics). */
type EventObserver = (operationId: string, e: OperationEvent) => void;

/**
 * The append-only, durable per-operation event log. Ids start at 0 and increase strictly; an
 * event is committed before live subscribers hear of it, so "replay, then follow" never has a
 * gap (followers drop ids they already saw).
 */
export class EventLog {
  private readonly nextSeq = new Map<string, number>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly observers = new Set<EventObserver>();

  constructor(private readonly store: Pick<MetadataStore, "operations" | "transaction">) {}

  append(
    operationId: string,
    spid: number,
    type: string,
    data: Record<string, unknown>,
  ): Promise<OperationEvent> {
    return this.inOrder(operationId, async () => {
      const event = await this.stored(this.store.operations, operationId, spid, type, data);
      return this.published(operationId, event);
    });
  }

  /**
   * Appends an event in one transaction with `write` (e.g. the terminal status with the
   * `completion` event): both are stored or neither is. When `write` answers false, nothing is
   * stored and the result is undefined. Subscribers hear of the event after the commit.
   */
  appendWith(
    operationId: string,
    spid: number,
    type: string,
    data: Record<string, unknown>,
    write: (tx: Repos) => Promise<boolean>,
  ): Promise<OperationEvent | undefined> {
    return this.inOrder(operationId, async () => {
      const event = await this.store.transaction(async (tx) => {
        if (!(await write(tx))) return undefined;
        return this.stored(tx.operations, operationId, spid, type, data);
      });
      return event && this.published(operationId, event);
    });
  }

  async replay(operationId: string, afterSeq: number, limit = 1000): Promise<OperationEvent[]> {
    const rows = await this.store.operations.events(operationId, afterSeq, limit);
    return rows.map((r) => ({
      id: r.seq,
      ts: isoMicros(r.ts),
      spid: r.spid ?? 0,
      type: r.type,
      data: JSON.parse(r.data) as Record<string, unknown>,
    }));
  }

  /**
   * Whether the operation has finished. Its terminal status and its `completion` event are
   * committed together: once this is true, the log holds everything it ever will.
   */
  async finished(operationId: string): Promise<boolean> {
    const status = await this.store.operations.statusOf(operationId);
    return status === undefined || TERMINAL_STATUSES.includes(status);
  }

  subscribe(operationId: string, listener: Listener): () => void {
    let set = this.listeners.get(operationId);
    if (!set) {
      set = new Set();
      this.listeners.set(operationId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(operationId);
    };
  }

  /** Every stored event of every operation, after its own subscribers (must not throw). */
  observe(observer: EventObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Drops in-memory state of a finished operation (its log stays in the store). */
  forget(operationId: string): void {
    this.nextSeq.delete(operationId);
  }

  /** Runs the writes of one operation one after the other, so ids are assigned and stored in order. */
  private inOrder<T>(operationId: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.chains.get(operationId) ?? Promise.resolve()).then(fn);
    const settled = next.catch(() => undefined);
    this.chains.set(operationId, settled);
    void settled.then(() => {
      if (this.chains.get(operationId) === settled) this.chains.delete(operationId);
    });
    return next;
  }

  /** Writes the event with the next id through `repo` (the store or an open transaction). */
  private async stored(
    repo: Repos["operations"],
    operationId: string,
    spid: number,
    type: string,
    data: Record<string, unknown>,
  ): Promise<OperationEvent> {
    const seq = this.nextSeq.get(operationId) ?? (await repo.lastEventSeq(operationId)) + 1;
    const now = Date.now();
    await repo.appendEvent({ operationId, seq, ts: now, spid, type, data: JSON.stringify(data) });
    return { id: seq, ts: isoMicros(now), spid, type, data };
  }

  /** The event is stored: its id is taken (a failed write takes none) and subscribers hear of it. */
  private published(operationId: string, e: OperationEvent): OperationEvent {
    this.nextSeq.set(operationId, e.id + 1);
    for (const l of this.listeners.get(operationId) ?? []) l(e);
    // The event is stored: an observer's failure (metrics) must not make its append look failed.
    for (const o of this.observers) {
      try {
        o(operationId, e);
      } catch {
        // observers are best-effort
      }
    }
    return e;
  }
}
