/**
 * An operation's terminal status and its `completion` event are committed together (issue 11
 * §2): on every path that ends an operation, at start-up recovery, when the completion cannot be
 * stored, and on a full database. Real queue, real SQLite file; a second connection watches
 * the committed state from inside every write of the store.
 */
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { newId } from "../../src/core/ids.js";
import type { OperationRecord } from "../../src/metadata/repos/operation-repo.js";
import { followEvents } from "../../src/operations/event-follower.js";
import type { OperationEvent } from "../../src/operations/event-log.js";
import { type QueueWorld, queueWorld, settled } from "./queue-harness.js";

const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];
const REFUSE_COMPLETION = `
  CREATE TEMP TRIGGER refuse_completion BEFORE INSERT ON main.operation_events
  WHEN NEW.type = 'completion' BEGIN SELECT RAISE(ABORT, 'injected: completion refused'); END;`;

describe("operations finish atomically", () => {
  let w: QueueWorld;
  afterEach(async () => {
    await w?.close();
  });

  const eventsOf = async (id: string) => w.events.replay(id, -1, 10_000);
  const until = async (what: string, cond: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 20_000;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  /** Seeds an operation a crashed server left behind, with `events` events already in its log. */
  const crashed = async (status: "ASSIGNED" | "EXECUTING" | "PENDING", events: number) => {
    const id = newId();
    await w.store.operations.insert({
      id,
      projectId: w.project.id,
      kind: "instance",
      metadata: { mode: "hang" },
      createdAt: Date.now() - 1000,
    });
    if (status !== "PENDING") await w.store.operations.transition(id, ["PENDING"], status, Date.now() - 500);
    for (let i = 0; i < events; i++)
      await w.store.operations.appendEvent({
        operationId: id,
        seq: i,
        ts: Date.now(),
        spid: 1,
        type: "stdout",
        data: JSON.stringify({ value: `line ${i}\n` }),
      });
    return id;
  };

  it("many operations ending every way: no reader ever sees a terminal status without its completion event, or the reverse", async () => {
    w = await queueWorld({ nodeSlots: { instance: 8 } });
    const probe = w.probeEveryWrite();
    const statusStmt = w.observer.prepare("SELECT status FROM operations WHERE id = ?");
    const committedStatus = (id: string) => (statusStmt.get(id) as { status: string }).status;
    const lateNotices: string[] = [];
    const follows: Array<Promise<OperationEvent[]>> = [];
    const follow = (op: OperationRecord) => {
      // A subscriber hears of the completion only once it is committed with the status.
      const off = w.events.subscribe(op.id, (e) => {
        if (e.type === "completion" && !TERMINAL.includes(committedStatus(op.id))) lateNotices.push(op.id);
      });
      follows.push(
        (async () => {
          const seen: OperationEvent[] = [];
          for await (const e of followEvents(w.events, op.id, -1, { follow: true })) {
            seen.push(e);
            if (e.type === "completion") expect(TERMINAL).toContain(committedStatus(op.id));
          }
          off();
          return seen;
        })(),
      );
    };

    // Eight that hold every slot, so the next ones stay PENDING until cancelled or let through.
    const hanging: OperationRecord[] = [];
    for (let i = 0; i < 8; i++) hanging.push(await w.enqueue("hang"));
    for (const op of hanging) await w.handler.running(op.id);
    const pending: OperationRecord[] = [];
    for (let i = 0; i < 10; i++) pending.push(await w.enqueue("succeed"));
    const rest: OperationRecord[] = [];
    for (const mode of ["succeed", "fail", "throw", "hang"] as const)
      for (let i = 0; i < 15; i++) rest.push(await w.enqueue(mode, { resultBytes: 100 }));
    for (const op of [...hanging, ...pending, ...rest]) follow(op);

    // Cancel of pending ones, then of running ones (which frees the slots for the rest).
    for (const op of pending.slice(0, 5))
      expect((await w.queue.cancel(w.project.id, op.id)).status).toBe("CANCELLED");
    await Promise.all(hanging.map((op) => w.queue.cancel(w.project.id, op.id)));
    for (const op of rest.filter((o) => o.metadata["mode"] === "hang")) {
      await w.handler.running(op.id);
      await w.queue.cancel(w.project.id, op.id);
    }
    const all = [...hanging, ...pending, ...rest];
    const final = await Promise.all(all.map((op) => settled(w, op.id)));
    const sequences = await Promise.all(follows);

    expect(probe.probes()).toBeGreaterThan(all.length * 2);
    expect(probe.torn).toEqual([]);
    expect(w.torn()).toEqual([]);
    expect(lateNotices).toEqual([]);
    const byMode = (mode: string) =>
      final.filter((_, i) => all[i]?.metadata["mode"] === mode).map((o) => o.status);
    expect(new Set(byMode("fail"))).toEqual(new Set(["FAILED"]));
    expect(new Set(byMode("throw"))).toEqual(new Set(["FAILED"]));
    expect(new Set(byMode("hang"))).toEqual(new Set(["CANCELLED"]));
    expect(final.filter((o) => o.status === "CANCELLED")).toHaveLength(8 + 15 + 5);
    for (const [i, seen] of sequences.entries()) {
      const op = final[i] as OperationRecord;
      expect(seen.map((e) => e.id)).toEqual(seen.map((_, j) => j));
      expect(seen.at(-1)?.type).toBe("completion");
      expect(seen.at(-1)?.data["status"]).toBe(op.status);
      expect(seen.filter((e) => e.type === "completion")).toHaveLength(1);
    }
  });

  it("a completion that cannot be stored leaves the finish unstored (status included), and recovery ends it later", async () => {
    w = await queueWorld();
    w.raw.exec(REFUSE_COMPLETION);
    const op = await w.enqueue("succeed", { resultBytes: 10 });
    await until("the finish to fail", () => w.logs.some((l) => l.includes("could not be stored")));
    // The old two-step finish committed SUCCESS here and then lost the event.
    const after = await w.store.operations.get(op.id);
    expect(after?.status).toBe("EXECUTING");
    expect(after?.metadata["result"]).toBeUndefined();
    expect((await eventsOf(op.id)).map((e) => e.type)).toEqual(["init", "stdout"]);
    expect(w.torn()).toEqual([]);

    // Cancel of a pending operation: the same.
    const pendingId = await crashed("PENDING", 0);
    await expect(w.queue.cancel(w.project.id, pendingId)).rejects.toThrow(/injected/);
    expect((await w.store.operations.get(pendingId))?.status).toBe("PENDING");
    expect(w.torn()).toEqual([]);

    w.raw.exec("DROP TRIGGER refuse_completion");
    await w.queue.close(1000);
    expect(await w.restart().recover()).toBe(1);
    const recovered = await w.store.operations.get(op.id);
    expect(recovered?.status).toBe("FAILED");
    const log = await eventsOf(op.id);
    expect(log.map((e) => [e.id, e.type])).toEqual([
      [0, "init"],
      [1, "stdout"],
      [2, "completion"],
    ]);
    expect(w.torn()).toEqual([]);
  });

  it("crash recovery marks interrupted operations FAILED with their completion event, in the same transaction", async () => {
    w = await queueWorld();
    const assigned = await crashed("ASSIGNED", 0);
    const executing = await crashed("EXECUTING", 3);
    const pending = await crashed("PENDING", 0);
    const probe = w.probeEveryWrite();

    // A completion that cannot be written: recovery stops, and writes no status without it.
    w.raw.exec(REFUSE_COMPLETION);
    await expect(w.restart().recover()).rejects.toThrow(/injected/);
    expect((await w.store.operations.inStatus(["ASSIGNED", "EXECUTING"])).map((o) => o.id).sort()).toEqual(
      [assigned, executing].sort(),
    );
    w.raw.exec("DROP TRIGGER refuse_completion");

    expect(await w.restart().recover()).toBe(2);
    for (const [id, before] of [
      [assigned, 0],
      [executing, 3],
    ] as const) {
      const op = await w.store.operations.get(id);
      expect(op?.status).toBe("FAILED");
      expect(op?.error).toBe("the server restarted while the operation was running");
      const log = await eventsOf(id);
      expect(log.map((e) => e.id)).toEqual([...Array(before + 1).keys()]);
      expect(log.at(-1)).toMatchObject({
        type: "completion",
        data: { status: "FAILED", error: "the server restarted while the operation was running" },
      });
    }
    expect((await w.store.operations.get(pending))?.status).toBe("PENDING");
    expect(probe.torn).toEqual([]);
    expect(w.torn()).toEqual([]);
  });

  it("shutdown ends running operations FAILED with their completion event", async () => {
    w = await queueWorld();
    const probe = w.probeEveryWrite();
    const ops = [await w.enqueue("hang"), await w.enqueue("hang")];
    for (const op of ops) await w.handler.running(op.id);
    await w.queue.close(5000);
    for (const op of ops) {
      expect((await w.store.operations.get(op.id))?.status).toBe("FAILED");
      expect((await eventsOf(op.id)).at(-1)).toMatchObject({
        type: "completion",
        data: { status: "FAILED", error: "the server shut down while the operation was running" },
      });
    }
    expect(probe.torn).toEqual([]);
  });

  it("a full database while storing a result: the storage reserve is given back and the result is stored", async () => {
    let relieved = 0;
    w = await queueWorld({
      relieveStorage: async () => {
        relieved++;
        await sql`PRAGMA max_page_count = 1000000`.execute(w.store.db);
      },
    });
    // The database may not grow any more: the result (a 256 KiB document) does not fit.
    w.handler.beforeResult = () => {
      const pages = w.raw.pragma("page_count", { simple: true }) as number;
      w.raw.pragma(`max_page_count = ${pages}`);
    };
    const op = await w.enqueue("succeed", { resultBytes: 256 * 1024 });
    const done = await settled(w, op.id);
    expect(relieved).toBeGreaterThanOrEqual(1);
    expect(w.logs.some((l) => l.includes("out of storage space storing a result"))).toBe(true);
    expect(done.status).toBe("SUCCESS");
    expect(String((done.metadata["result"] as { stdout: string }).stdout)).toHaveLength(256 * 1024);
    expect((await eventsOf(op.id)).at(-1)).toMatchObject({ type: "completion", data: { status: "SUCCESS" } });
    expect(w.torn()).toEqual([]);
  });
});
