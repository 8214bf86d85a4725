/**
 * `followEvents`, the iterator behind `GET …/events`: replay, live, a slow reader's overflow and
 * catch-up from the log, the end at completion, abort. Real EventLog over real SQLite.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/core/ids.js";
import type { Project } from "../../src/metadata/repos/project-repo.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { followEvents, MAX_BUFFERED, MAX_BUFFERED_BYTES } from "../../src/operations/event-follower.js";
import { EventLog, type OperationEvent } from "../../src/operations/event-log.js";

/** Counts reads of the stored log: a follower that overflowed reads it again. */
class CountingLog extends EventLog {
  reads = 0;
  override replay(operationId: string, afterSeq: number, limit?: number): Promise<OperationEvent[]> {
    this.reads++;
    return super.replay(operationId, afterSeq, limit);
  }
}

describe("followEvents", () => {
  let store: SqliteMetadataStore;
  let log: CountingLog;
  let project: Project;
  let id: string;

  beforeEach(async () => {
    store = SqliteMetadataStore.open(":memory:");
    log = new CountingLog(store);
    project = await store.projects.create("p");
    id = newId();
    await store.operations.insert({
      id,
      projectId: project.id,
      kind: "instance",
      metadata: {},
      createdAt: 1,
    });
    await store.operations.transition(id, ["PENDING"], "EXECUTING");
  });
  afterEach(async () => {
    await store.close();
  });

  const emit = async (n: number, value = "x") => {
    for (let i = 0; i < n; i++) await log.append(id, 1, "stdout", { value });
  };
  const complete = () =>
    log.appendWith(id, 0, "completion", { status: "SUCCESS" }, (tx) =>
      tx.operations.complete(id, { status: "SUCCESS" }),
    );
  const collect = async (it: AsyncIterable<OperationEvent>) => {
    const out: OperationEvent[] = [];
    for await (const e of it) out.push(e);
    return out;
  };
  /** Reads until the event with id `last` (a follow that lost events would wait here forever). */
  const upTo = async (it: AsyncIterator<OperationEvent>, last: number) => {
    const out: OperationEvent[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) {
      out.push(r.value);
      if (r.value.id >= last) break;
    }
    return out;
  };
  const ids = (es: OperationEvent[]) => es.map((e) => e.id);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const listeners = () => (log as unknown as { listeners: Map<string, Set<unknown>> }).listeners.size;

  it("replay without follow: the stored log after the cursor, in pages, then the end", async () => {
    await emit(1200);
    expect(ids(await collect(followEvents(log, id, -1, { follow: false })))).toEqual(range(0, 1199));
    // A running operation: what is stored so far, and the iteration ends.
    expect(ids(await collect(followEvents(log, id, 1100, { follow: false })))).toEqual(range(1101, 1199));
    expect(log.reads).toBeGreaterThanOrEqual(4);
    await complete();
    const tail = await collect(followEvents(log, id, 1198, { follow: false }));
    expect(tail.map((e) => [e.id, e.type])).toEqual([
      [1199, "stdout"],
      [1200, "completion"],
    ]);
    expect(listeners()).toBe(0);
  });

  it("follow: replay, then live events, ending right after completion", async () => {
    await emit(3);
    const order: string[] = [];
    const writers: Array<Promise<unknown>> = [];
    const it = followEvents(log, id, -1, { follow: true, onReplayed: () => order.push("replayed") });
    const seen: Promise<OperationEvent[]> = (async () => {
      const out: OperationEvent[] = [];
      for await (const e of it) {
        order.push(`event ${e.id}`);
        out.push(e);
        // Live events appended while the reader is at work.
        if (e.id === 2) writers.push(emit(5));
        if (e.id === 7) writers.push(complete().then(() => emit(2)));
      }
      return out;
    })();
    const events = await seen;
    await Promise.all(writers);
    expect(ids(events)).toEqual(range(0, 8));
    expect(events.at(-1)?.type).toBe("completion");
    expect(order.filter((o) => o === "replayed")).toHaveLength(1);
    expect(order.indexOf("replayed")).toBeLessThan(order.indexOf("event 3"));
    expect(listeners()).toBe(0);
  });

  it("a slow reader overflows its buffer (by count) and catches up from the log: every id once, in order", {
    timeout: 20_000,
  }, async () => {
    await emit(1);
    const it = followEvents(log, id, -1, { follow: true });
    expect((await it.next()).value?.id).toBe(0);
    const readsBefore = log.reads;
    // The reader is paused at id 0 while far more than its buffer is appended.
    await emit(MAX_BUFFERED * 3);
    // Still running: what was dropped can only come back from the log.
    const rest = await upTo(it, MAX_BUFFERED * 3);
    expect(ids(rest)).toEqual(range(1, MAX_BUFFERED * 3));
    await complete();
    const end = await collect({ [Symbol.asyncIterator]: () => it });
    expect(end.map((e) => e.type)).toEqual(["completion"]);
    expect(log.reads).toBeGreaterThan(readsBefore);
    expect(listeners()).toBe(0);
  });

  it("a slow reader overflows its buffer by bytes too", { timeout: 20_000 }, async () => {
    const big = "y".repeat(64 * 1024);
    const n = Math.ceil(MAX_BUFFERED_BYTES / big.length) + 4;
    await emit(1);
    const it = followEvents(log, id, -1, { follow: true });
    await it.next();
    const readsBefore = log.reads;
    await emit(n, big);
    expect(ids(await upTo(it, n))).toEqual(range(1, n));
    expect(log.reads).toBeGreaterThan(readsBefore);
  });

  it("ends at once for a finished operation resumed past its end, and for a log without completion", async () => {
    await emit(2);
    await complete();
    expect(await collect(followEvents(log, id, 50, { follow: true }))).toEqual([]);
    expect(ids(await collect(followEvents(log, id, 1, { follow: true })))).toEqual([2]);
    // Written by an older server that lost the completion event in a crash: the follow still ends.
    const legacy = newId();
    await store.operations.insert({
      id: legacy,
      projectId: project.id,
      kind: "instance",
      metadata: {},
      createdAt: 1,
    });
    await store.operations.complete(legacy, { status: "FAILED", error: "x" });
    expect(await collect(followEvents(log, legacy, -1, { follow: true }))).toEqual([]);
    expect(listeners()).toBe(0);
  });

  it("a live completion behind the cursor ends the follow without sending anything", async () => {
    const it = followEvents(log, id, 5, { follow: true });
    const first = it.next();
    await emit(5);
    await complete();
    expect(await first).toEqual({ done: true, value: undefined });
    expect(listeners()).toBe(0);
  });

  it("abort ends a follow waiting for live events, and unsubscribes", async () => {
    await emit(2);
    const abort = new AbortController();
    const it = followEvents(log, id, -1, { follow: true, signal: abort.signal });
    expect((await it.next()).value?.id).toBe(0);
    expect((await it.next()).value?.id).toBe(1);
    const waiting = it.next();
    expect(listeners()).toBe(1);
    abort.abort();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(listeners()).toBe(0);
    // An aborted signal from the start: nothing is read.
    expect(await collect(followEvents(log, id, -1, { follow: true, signal: abort.signal }))).toEqual([]);
  });

  it("a reader that stops early (break) unsubscribes", async () => {
    await emit(3);
    for await (const e of followEvents(log, id, -1, { follow: true })) if (e.id === 1) break;
    expect(listeners()).toBe(0);
  });
});
