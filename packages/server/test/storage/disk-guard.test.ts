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
});
