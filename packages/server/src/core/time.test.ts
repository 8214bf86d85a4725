import { describe, expect, it } from "vitest";
import { isAppError } from "./errors.js";
import { isoMicros, parseFlag, parseTimeBound } from "./time.js";

const NOW = Date.UTC(2026, 1, 16, 21, 25, 30, 265);

function rejection(fn: () => unknown): { kind: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isAppError(err)) return { kind: err.kind, message: err.message };
    throw err;
  }
  throw new Error("expected a rejection");
}

describe("isoMicros", () => {
  it("always prints six fraction digits and Z", () => {
    expect(isoMicros(Date.UTC(2026, 1, 16, 21, 25, 30, 265))).toBe("2026-02-16T21:25:30.265000Z");
    expect(isoMicros(Date.UTC(2026, 0, 1, 0, 0, 0, 0))).toBe("2026-01-01T00:00:00.000000Z");
    expect(isoMicros(0)).toBe("1970-01-01T00:00:00.000000Z");
  });

  it("keeps sub-millisecond precision as microseconds", () => {
    expect(isoMicros(Date.UTC(2026, 1, 16, 21, 25, 30, 265) + 0.5)).toBe("2026-02-16T21:25:30.265500Z");
  });

  it("matches the form Python 3.10's fromisoformat accepts", () => {
    for (const t of [Date.now(), Date.now() + 0.123, 1e12, 4102444800000]) {
      expect(isoMicros(t)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    }
  });

  it("round-trips through parseTimeBound at millisecond precision", () => {
    const t = Date.UTC(2025, 6, 4, 12, 0, 0, 999);
    expect(parseTimeBound(isoMicros(t), "since", NOW)).toBe(t);
  });
});

describe("parseTimeBound", () => {
  const at = (s: string) => parseTimeBound(s, "since", NOW);
  const T = Date.UTC(2026, 1, 16, 21, 25, 30);

  it("ISO-8601 with Z", () => {
    expect(at("2026-02-16T21:25:30Z")).toBe(T);
    expect(at("2026-02-16T21:25:30z")).toBe(T);
    expect(at("2026-02-16T21:25:30.5Z")).toBe(T + 500);
    expect(at("2026-02-16T21:25:30.265Z")).toBe(T + 265);
  });

  it("ISO-8601 with six (or nine) fraction digits", () => {
    expect(at("2026-02-16T21:25:30.265927Z")).toBe(T + 265);
    expect(at("2026-02-16T21:25:30.265927123Z")).toBe(T + 265);
  });

  it("ISO-8601 with an offset, as Python's isoformat() writes it", () => {
    expect(at("2024-01-01T12:00:00+00:00")).toBe(Date.UTC(2024, 0, 1, 12));
    expect(at("2026-02-16T23:25:30+02:00")).toBe(T);
    expect(at("2026-02-16T16:25:30-05:00")).toBe(T);
    expect(at("2026-02-16T23:25:30.265927+02:00")).toBe(T + 265);
    expect(at("2026-02-16T23:25:30+0200")).toBe(T);
  });

  it("ISO-8601 without a zone is UTC; a space separator and a bare date are accepted", () => {
    expect(at("2026-02-16T21:25:30")).toBe(T);
    expect(at("2026-02-16 21:25:30")).toBe(T);
    expect(at("2026-02-16")).toBe(Date.UTC(2026, 1, 16));
  });

  it("bare integer seconds mean that long before now", () => {
    expect(at("3600")).toBe(NOW - 3_600_000);
    expect(at("0")).toBe(NOW);
  });

  it("durations in every unit mean that long before now", () => {
    expect(at("3600s")).toBe(NOW - 3_600_000);
    expect(at("15m")).toBe(NOW - 15 * 60_000);
    expect(at("1h")).toBe(NOW - 3_600_000);
    expect(at("2h")).toBe(NOW - 2 * 3_600_000);
    expect(at("3d")).toBe(NOW - 3 * 86_400_000);
    expect(at("1w")).toBe(NOW - 7 * 86_400_000);
    expect(at("1M")).toBe(NOW - 30 * 86_400_000);
    expect(at("1y")).toBe(NOW - 365 * 86_400_000);
    expect(at("1.5h")).toBe(NOW - 5_400_000);
    expect(at(" 15m ")).toBe(NOW - 15 * 60_000);
  });

  it("uses the current time when none is given", () => {
    const before = Date.now();
    const t = parseTimeBound("1h", "since");
    expect(t).toBeGreaterThanOrEqual(before - 3_600_000);
    expect(t).toBeLessThanOrEqual(Date.now() - 3_600_000);
  });

  it("refuses anything else with a 400 that names the parameter", () => {
    for (const bad of ["", "abc", "15x", "-5m", "m", "1 h", "2026-13-45T00:00:00Z", "yesterday", "0x10"]) {
      const r = rejection(() => parseTimeBound(bad, "until", NOW));
      expect(r.kind, bad).toBe("invalid_argument");
      expect(r.message, bad).toMatch(/^until must be an ISO-8601 time or a duration/);
    }
  });

  it("does not echo more than 64 characters of a hostile value", () => {
    const r = rejection(() => parseTimeBound("x".repeat(10_000), "since", NOW));
    expect(r.message.length).toBeLessThan(200);
  });
});

describe("parseFlag", () => {
  it("present and not 0 is true, including empty", () => {
    for (const v of ["", "1", "true", "yes", "on", " 1 "]) expect(parseFlag(v), JSON.stringify(v)).toBe(true);
  });
  it("absent, 0, false and no are false", () => {
    for (const v of [undefined, "0", "false", "FALSE", "no", " 0 "])
      expect(parseFlag(v), JSON.stringify(v)).toBe(false);
  });
});
