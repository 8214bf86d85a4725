/** A run's teardown: last acquired, first released; each step once; failures logged, never thrown. */
import { describe, expect, it } from "vitest";
import { CleanupStack } from "../../src/instances/cleanup-stack.js";
import { StageClock } from "../../src/instances/stage-clock.js";

function logger() {
  const warned: Array<Record<string, unknown>> = [];
  return { warned, warn: (o: Record<string, unknown>) => void warned.push(o) };
}

describe("cleanup stack", () => {
  it("undoes in reverse order, goes on past a failing step and logs it, and a second run does nothing", async () => {
    const log = logger();
    const stack = new CleanupStack(log, { opId: "op" });
    const order: string[] = [];
    stack.push("lease", async () => void order.push("lease"));
    stack.push("mount", async () => {
      order.push("mount");
      throw new Error("busy");
    });
    stack.push("sandbox", async () => void order.push("sandbox"));
    await stack.run();
    expect(order).toEqual(["sandbox", "mount", "lease"]);
    expect(log.warned).toHaveLength(1);
    expect(log.warned[0]).toMatchObject({ opId: "op", step: "mount" });
    await stack.run();
    expect(order).toHaveLength(3);
  });

  it("a step run early is not run again; a failed early run is retried by the stack", async () => {
    const stack = new CleanupStack(logger());
    let unmounts = 0;
    let fail = true;
    const early = stack.push("unmount", async () => {
      unmounts++;
      if (fail) throw new Error("EBUSY");
    });
    await expect(early.run()).rejects.toThrow("EBUSY");
    fail = false;
    await stack.run();
    expect(unmounts).toBe(2);
    await early.run();
    expect(unmounts).toBe(2);
  });

  it("a step already running when the stack runs is awaited, not started twice", async () => {
    const stack = new CleanupStack(logger());
    let calls = 0;
    let finish: () => void = () => undefined;
    const destroy = stack.push("destroy", () => {
      calls++;
      return new Promise<void>((r) => {
        finish = r;
      });
    });
    const inFlight = destroy.run();
    let stackDone = false;
    const all = stack.run().then(() => {
      stackDone = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(stackDone).toBe(false);
    finish();
    await Promise.all([inFlight, all]);
    expect(calls).toBe(1);
  });
});

describe("stage clock", () => {
  it("reports each entered stage once, in order, and an observer's failure does not escape", () => {
    const seen: Array<[string, number]> = [];
    const clock = new StageClock((stage, seconds) => {
      seen.push([stage, seconds]);
      throw new Error("metrics down");
    });
    clock.enter("prepare");
    clock.enter("start");
    clock.enter("teardown");
    clock.end();
    clock.end();
    expect(seen.map(([s]) => s)).toEqual(["prepare", "start", "teardown"]);
    for (const [, s] of seen) expect(s).toBeGreaterThanOrEqual(0);
  });
});
