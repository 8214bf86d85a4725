import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { FIRST_HOST_ID, leaseUserRange, RANGE_SIZE, SLOTS } from "../../src/runtime/userns.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "userns-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("hands out disjoint ranges above every login account, held until released", () => {
  const leases = Array.from({ length: 20 }, () => leaseUserRange(dir));
  const bases = leases.map((l) => l.range.hostId);
  expect(new Set(bases).size).toBe(20);
  for (const l of leases) {
    expect(l.range.size).toBe(RANGE_SIZE);
    expect(l.range.hostId).toBeGreaterThanOrEqual(FIRST_HOST_ID);
    expect((l.range.hostId - FIRST_HOST_ID) % RANGE_SIZE).toBe(0);
    expect(l.range.hostId + l.range.size).toBeLessThanOrEqual(FIRST_HOST_ID + SLOTS * RANGE_SIZE);
  }
  const slot = String(((bases[0] as number) - FIRST_HOST_ID) / RANGE_SIZE);
  // Another process (another server on the host) cannot take a held range: flock refuses it.
  const held = spawnSync("flock", ["-n", path.join(dir, slot), "true"]);
  expect(held.status).not.toBe(0);
  for (const l of leases) l.release();
  leases[0]?.release(); // idempotent
  const free = spawnSync("flock", ["-n", path.join(dir, slot), "true"]);
  expect(free.status).toBe(0);
});
