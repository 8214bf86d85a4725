import { isoMicros } from "../core/time.js";
import type { OperationRepo } from "../metadata/repos/operation-repo.js";

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
export type EventObserver = (operationId: string, e: OperationEvent) => void;

/**
 * The append-only, durable per-operation event log. Ids start at 0 and increase strictly; an
 * event is stored before live subscribers hear of it, so "replay, then follow" never has a gap
 * (followers drop ids they already saw).
 */
export class EventLog {
  private readonly nextSeq = new Map<string, number>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly observers = new Set<EventObserver>();

  constructor(private readonly repo: OperationRepo) {}

  append(
    operationId: string,
    spid: number,
    type: string,
    data: Record<string, unknown>,
  ): Promise<OperationEvent> {
    // Appends of one operation are chained so ids are assigned and stored in order.
    const prev = this.chains.get(operationId) ?? Promise.resolve();
    const next = prev.then(async () => {
      let seq = this.nextSeq.get(operationId);
      if (seq === undefined) seq = (await this.repo.lastEventSeq(operationId)) + 1;
      this.nextSeq.set(operationId, seq + 1);
      const now = Date.now();
      const event: OperationEvent = { id: seq, ts: isoMicros(now), spid, type, data };
      await this.repo.appendEvent({ operationId, seq, ts: now, spid, type, data: JSON.stringify(data) });
      for (const l of this.listeners.get(operationId) ?? []) l(event);
      for (const o of this.observers) o(operationId, event);
      return event;
    });
    const settled = next.catch(() => undefined);
    this.chains.set(operationId, settled);
    void settled.then(() => {
      if (this.chains.get(operationId) === settled) this.chains.delete(operationId);
    });
    return next;
  }

  async replay(operationId: string, afterSeq: number, limit = 1000): Promise<OperationEvent[]> {
    const rows = await this.repo.events(operationId, afterSeq, limit);
    return rows.map((r) => ({
      id: r.seq,
      ts: isoMicros(r.ts),
      spid: r.spid ?? 0,
      type: r.type,
      data: JSON.parse(r.data) as Record<string, unknown>,
    }));
  }

  /** The last stored event of an operation (its completion once the operation has finished). */
  async last(operationId: string): Promise<OperationEvent | undefined> {
    const seq = await this.repo.lastEventSeq(operationId);
    if (seq < 0) return undefined;
    return (await this.replay(operationId, seq - 1, 1))[0];
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
}
