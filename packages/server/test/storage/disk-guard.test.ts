/**
 * The free-space guard on a real filesystem: inodes run out as surely as bytes, and a reserve
 * left by an earlier run with a larger setting is not kept at that size.
 */
import { mkdtempSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isStorageFull } from "../../src/core/errors.js";
import { createLogger } from "../../src/observability/logger.js";
import { DiskGuard } from "../../src/storage/disk-guard.js";

const MiB = 1024 * 1024;

describe("disk guard", () => {
  let dir: string;
  let guard: DiskGuard | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "contree-disk-guard-"));
  });
  afterEach(() => {
    guard?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses writes below the minimum of free inodes, whatever the free bytes", async () => {
    const s = statfsSync(dir);
    if (s.files === 0) throw new Error("the test filesystem reports no inode table");
    guard = new DiskGuard({
      dataDir: dir,
      minFreeBytes: 0,
      reserveBytes: 0,
      minFreeInodes: s.ffree + 1_000_000,
      logger: createLogger("silent"),
    });
    await guard.start();
    let err: unknown;
    try {
      guard.assertWritable();
    } catch (e) {
      err = e;
    }
    expect(isStorageFull(err)).toBe(true);
  });

  it("replaces a reserve left by an earlier run with one of the current size", async () => {
    writeFileSync(join(dir, "storage-reserve"), Buffer.alloc(4 * MiB));
    guard = new DiskGuard({
      dataDir: dir,
      minFreeBytes: 0,
      reserveBytes: MiB,
      logger: createLogger("silent"),
    });
    await guard.start();
    expect(statSync(join(dir, "storage-reserve")).size).toBe(MiB);
    guard.assertWritable();
  });

  it("asks for an early GC below twice the minimum, once a minute while it lasts, and at once on a full write", async () => {
    const free = statfsSync(dir).bavail * statfsSync(dir).bsize;
    let asked = 0;
    // Refusing starts below the minimum; GC is asked for room below twice it, before that.
    guard = new DiskGuard({
      dataDir: dir,
      minFreeBytes: Math.ceil(free * 0.6),
      reserveBytes: 0,
      logger: createLogger("silent"),
      onPressure: () => asked++,
    });
    await guard.start();
    expect(guard.underPressure()).toBe(true);
    guard.assertWritable();
    expect(asked).toBe(1);
    // The guard re-reads statfs every second: still pressed, not asked again within the minute.
    await new Promise((r) => setTimeout(r, 1200));
    expect(asked).toBe(1);
    // A write that ran out of space asks again at once.
    await guard.relieve();
    expect(asked).toBe(2);
  });

  it("never asks for GC with room to spare", async () => {
    let asked = 0;
    guard = new DiskGuard({
      dataDir: dir,
      minFreeBytes: 1,
      reserveBytes: 0,
      logger: createLogger("silent"),
      onPressure: () => asked++,
    });
    await guard.start();
    expect(guard.underPressure()).toBe(false);
    expect(asked).toBe(0);
  });
});
