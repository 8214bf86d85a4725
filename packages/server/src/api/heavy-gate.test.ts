import { describe, expect, it } from "vitest";
import type { Principal } from "../auth/principal.js";
import { AppError } from "../core/errors.js";
import { HeavyGate } from "./heavy-gate.js";

const who = (token: string, project: string) =>
  ({ token: { id: token }, project: { id: project } }) as Principal;

function refused(f: () => unknown): AppError {
  try {
    f();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error("not refused");
}

describe("HeavyGate", () => {
  it("caps per token, per project and in total; releases once; 429 with Retry-After", () => {
    const g = new HeavyGate({ perToken: 2, perProject: 3, total: 4 });
    const a1 = who("a1", "A");
    const a2 = who("a2", "A");
    const b = who("b", "B");
    const r1 = g.enter(a1);
    g.enter(a1);
    const tok = refused(() => g.enter(a1));
    expect(tok.status).toBe(429);
    expect(tok.retryAfter).toBe(1);
    expect(tok.message).toMatch(/token/);
    g.enter(a2);
    const proj = refused(() => g.enter(a2));
    expect(proj.message).toMatch(/project/);
    g.enter(b);
    expect(refused(() => g.enter(who("c", "C"))).message).toMatch(/server/);
    expect(g.inFlight(a1)).toEqual({ token: 2, project: 3 });
    r1();
    r1();
    expect(g.inFlight(a1)).toEqual({ token: 1, project: 2 });
    g.enter(a1);
    expect(refused(() => g.enter(b)).status).toBe(429);
  });
});
