/**
 * Free-space guard of the data filesystem. Below `minFreeBytes` new writes (uploads, spawns,
 * imports, tag changes) are refused with 507 while reads and in-flight work go on. A reserve
 * file of `reserveBytes` is held while there is room and given back when space runs short, so
 * that operations already running can still record their results (a finished run's output and
 * exit code are never lost to a full disk); it is taken again once space has come back.
 * Inodes run out as surely as bytes (millions of empty files): below `minFreeInodes` free
 * inodes writes are refused the same way.
 *
 * Before it comes to refusing, the guard asks for room: below twice either minimum (or when a
 * write ran out of space) it calls `onPressure`, which main.ts wires to the garbage collector's
 * early pass; again at most once a minute while the pressure lasts.
 */
import { statfsSync } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { insufficientStorage, STORAGE_FULL_MESSAGE } from "../core/errors.js";
import type { Logger } from "../observability/logger.js";
import { runCommand } from "../sys/run-command.js";

interface DiskGuardOptions {
  dataDir: string;
  /** New writes are refused below this much free space. */
  minFreeBytes: number;
  /** Held back for in-flight work; 0 disables the reserve. */
  reserveBytes: number;
  /** New writes are refused below this many free inodes (default: 50,000 or 1% of them). */
  minFreeInodes?: number;
  logger: Logger;
  /** Space is short or ran out: collect garbage now rather than at the next scheduled pass. */
  onPressure?: () => void;
}

/** statfs is a few microseconds, but a busy API needs it far less often than per request. */
const FRESH_MS = 200;
const RESERVE_FILE = "storage-reserve";
const DEFAULT_MIN_FREE_INODES = 50_000;
/** The reserve is written in chunks where it cannot be preallocated: never all of it in memory. */
const RESERVE_CHUNK = 1024 * 1024;
/** While the pressure lasts, the early-GC request is repeated this often at most. */
const PRESSURE_EVERY_MS = 60_000;

export class DiskGuard {
  private freeBytes = Number.POSITIVE_INFINITY;
  private freeInodes = Number.POSITIVE_INFINITY;
  private minFreeInodes = 0;
  private checkedAt = 0;
  private pressedAt = Number.NEGATIVE_INFINITY;
  private reserveHeld = false;
  private taking: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly reservePath: string;

  constructor(private readonly o: DiskGuardOptions) {
    this.reservePath = join(o.dataDir, RESERVE_FILE);
    this.timer = setInterval(() => this.refresh(true), 1000);
    this.timer.unref();
  }

  /** Measures and takes the reserve if there is room (start-up). */
  async start(): Promise<void> {
    // One left by an earlier run was sized by its setting: a lowered one must shrink it.
    await rm(this.reservePath, { force: true });
    this.refresh(true);
    await this.taking;
  }

  /** Free bytes on the data filesystem (not counting the reserve). */
  free(): number {
    this.refresh(false);
    return this.freeBytes;
  }

  /** Throws 507 when new writes must be refused. */
  assertWritable(): void {
    if (this.free() < this.o.minFreeBytes || this.freeInodes < this.minFreeInodes)
      throw insufficientStorage(STORAGE_FULL_MESSAGE);
  }

  /** True below twice a minimum: new writes are still taken, but GC has been asked for room. */
  underPressure(): boolean {
    this.refresh(false);
    return this.freeBytes < 2 * this.o.minFreeBytes || this.freeInodes < 2 * this.minFreeInodes;
  }

  /** Gives the reserve back now (an operation ran out of space and has a result to record). */
  async relieve(): Promise<void> {
    this.press(true);
    await this.taking;
    if (!this.reserveHeld) return;
    this.reserveHeld = false;
    await rm(this.reservePath, { force: true });
    this.o.logger.warn(
      { reserveBytes: this.o.reserveBytes },
      "data filesystem full: released the storage reserve so running operations can record their results",
    );
    this.checkedAt = 0;
  }

  private refresh(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < FRESH_MS) return;
    this.checkedAt = now;
    try {
      const s = statfsSync(this.o.dataDir);
      this.freeBytes = s.bavail * s.bsize;
      // filesystems without a fixed inode table (btrfs) report none at all
      this.freeInodes = s.files > 0 ? s.ffree : Number.POSITIVE_INFINITY;
      this.minFreeInodes =
        this.o.minFreeInodes ?? Math.min(DEFAULT_MIN_FREE_INODES, Math.floor(s.files / 100));
    } catch (err) {
      this.o.logger.warn({ err }, "statfs of the data dir failed");
      return;
    }
    if (this.freeBytes < 2 * this.o.minFreeBytes || this.freeInodes < 2 * this.minFreeInodes)
      this.press(false);
    else this.pressedAt = Number.NEGATIVE_INFINITY;
    if (this.o.reserveBytes <= 0 || this.taking !== undefined) return;
    if (this.reserveHeld && this.freeBytes < this.o.minFreeBytes / 2) void this.relieve();
    else if (!this.reserveHeld && this.freeBytes > this.o.minFreeBytes + 2 * this.o.reserveBytes)
      this.taking = this.take().finally(() => {
        this.taking = undefined;
      });
  }

  /** Asks for an early GC pass: on entering pressure, then once a minute (`now`: regardless). */
  private press(now: boolean): void {
    const at = Date.now();
    if (!this.o.onPressure || (!now && at - this.pressedAt < PRESSURE_EVERY_MS)) return;
    this.pressedAt = at;
    this.o.logger.warn(
      { freeBytes: this.freeBytes, minFreeBytes: this.o.minFreeBytes, freeInodes: this.freeInodes },
      "data filesystem short of space: asking the garbage collector for an early pass",
    );
    try {
      this.o.onPressure();
    } catch (err) {
      this.o.logger.warn({ err }, "early garbage collection request failed");
    }
  }

  private async take(): Promise<void> {
    try {
      // Allocated, not sparse, or it would give nothing back: preallocated where the filesystem
      // can (no data written), else written.
      const f = await runCommand("fallocate", ["-l", String(this.o.reserveBytes), this.reservePath]).catch(
        () => undefined,
      );
      if (f?.code !== 0) await this.writeReserve();
      this.reserveHeld = true;
    } catch (err) {
      await rm(this.reservePath, { force: true });
      this.o.logger.warn({ err }, "could not take the storage reserve");
    }
  }

  private async writeReserve(): Promise<void> {
    const fh = await open(this.reservePath, "w", 0o600);
    try {
      const chunk = Buffer.alloc(Math.min(RESERVE_CHUNK, this.o.reserveBytes));
      for (let left = this.o.reserveBytes; left > 0; left -= chunk.length)
        await fh.write(chunk, 0, Math.min(chunk.length, left));
    } finally {
      await fh.close();
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
