import { mkdirSync } from "node:fs";
import { mkdir, open, rm, rmdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import { internal } from "../../../core/errors.js";
import type { Logger } from "../../../observability/logger.js";
import { type Mounter, mounter } from "../../../sys/mount.js";
import { unmount } from "../../../sys/overlay-mount.js";
import { runCommand } from "../../../sys/run-command.js";
import { type RunScratch, reachedCap, type ScratchBackend } from "./scratch.js";

const MiB = 1024 * 1024;

/**
 * ext4 without a journal (the scratch dies with the run), one inode per 32 KiB, no reserved
 * blocks, inode tables left uninitialised (`noinit_itable` at mount keeps the kernel from
 * zeroing them, so the sparse image stays a few hundred KiB until the run writes).
 */
const MKFS_ARGS = [
  "-q",
  "-F",
  "-b",
  "4096",
  "-m",
  "0",
  "-i",
  "32768",
  "-O",
  "^has_journal,^resize_inode,sparse_super2",
  "-E",
  "lazy_itable_init=1,nodiscard,num_backup_sb=0,root_owner=0:0",
];
/** `discard`: what a run deletes is punched out of the sparse image, back to the host. */
const MOUNT_OPTIONS = "noinit_itable,discard";

/**
 * ext4's own metadata takes 1.2-3% of an image of this kind (measured from 16 MiB to 4 GiB,
 * more for small ones): the image is made a little larger and the surplus is taken by a
 * preallocated file (unwritten extents: counted as used, never written, so the sparse image
 * does not grow), leaving exactly the cap usable.
 */
function loopImageBytes(capBytes: number): number {
  return Math.ceil((capBytes * 1.04 + 2 * MiB) / MiB) * MiB;
}

/** Below this much free space on the data filesystem, used scratch filesystems are not reused. */
const HOST_LOW_BYTES = 256 * MiB;

/** Name of the file that takes the image's surplus; outside the run's upper and work dirs. */
const PAD_FILE = "cap-pad";

interface LoopFs {
  image: string;
  mount: string;
  /** The cap it holds (usable bytes). */
  cap: number;
}

interface LoopScratchOptions {
  /** Directory for the images and their mount points (on the data filesystem: sparse files). */
  dir: string;
  logger: Logger;
  /** Idle filesystems kept mounted for reuse (a warm pool), across all sizes. */
  idleMax?: number;
  mounter?: Mounter;
}

/**
 * Per-run loop-mounted ext4 of the cap's size: the filesystem's own size is the cap, on hosts
 * whose data filesystem has no project quotas. Making one costs mkfs (~30 ms) and a mount, so
 * a small pool keeps filesystems ready: a run takes one of its size (the project's default cap
 * is the common case), gives it back emptied, and a taken one is replaced in the background.
 * Commit copies the diff out (another filesystem). Images are sparse: the host pays for what
 * the run writes, and `discard` returns what it deletes.
 */
export class LoopScratch implements ScratchBackend {
  readonly name = "loop";
  readonly enforced = true;
  private readonly idle: LoopFs[] = [];
  private readonly warming = new Map<number, Promise<void>>();
  private seq = 0;
  private closed = false;
  private defaultCap: number | undefined;
  private readonly idleMax: number;
  private readonly m: Mounter;

  constructor(private readonly o: LoopScratchOptions) {
    this.idleMax = o.idleMax ?? 4;
    this.m = o.mounter ?? mounter();
  }

  /**
   * Prepares one filesystem for `capBytes`, the default cap, in the background, and keeps one
   * ready for it from now on.
   */
  warm(capBytes: number): void {
    this.defaultCap = capBytes;
    this.prepare(capBytes);
  }

  private prepare(cap: number): void {
    if (this.closed || this.warming.has(cap) || this.idle.some((f) => f.cap === cap)) return;
    if (this.idle.length >= this.idleMax) return;
    const p = this.create(cap)
      .then((fs) => this.park(fs))
      .catch((err: unknown) => this.o.logger.warn({ err }, "could not prepare a scratch filesystem"))
      .finally(() => this.warming.delete(cap));
    this.warming.set(cap, p);
  }

  async acquire(_runDir: string, capBytes: number): Promise<RunScratch> {
    const cap = capBytes;
    let i = this.idle.findIndex((f) => f.cap === cap);
    if (i < 0 && this.warming.has(cap)) {
      await this.warming.get(cap);
      i = this.idle.findIndex((f) => f.cap === cap);
    }
    const fs = i >= 0 ? (this.idle.splice(i, 1)[0] as LoopFs) : await this.create(cap);
    // Only sizes that were asked for before (pooled) or the default are kept ready: a tenant's
    // one-off caps would fill the pool, push the default out and cost an mkfs each.
    const pooled = i >= 0 || cap === this.defaultCap;
    if (pooled) this.prepare(cap);
    const upper = join(fs.mount, "upper");
    const work = join(fs.mount, "work");
    try {
      mkdirSync(upper);
      mkdirSync(work);
    } catch (err) {
      await this.destroy(fs);
      throw internal("could not prepare the run's scratch filesystem", { cause: err });
    }
    let released = false;
    return {
      upper,
      work,
      commit: "copy",
      reachedCap: async () => {
        const s = await statfs(fs.mount);
        return reachedCap(s.bavail * s.bsize, capBytes);
      },
      release: async () => {
        if (released) return;
        released = true;
        try {
          await rm(upper, { recursive: true, force: true });
          await rm(work, { recursive: true, force: true });
          // Images are sparse: on a nearly full data filesystem the loop device may have failed
          // writes the run never saw. Such a filesystem is not trusted again.
          const host = await statfs(this.o.dir);
          if (!pooled || host.bavail * host.bsize < HOST_LOW_BYTES) await this.destroy(fs);
          else this.park(fs);
        } catch (err) {
          this.o.logger.warn({ err }, "could not empty a scratch filesystem");
          await this.destroy(fs);
        }
      },
    };
  }

  private park(fs: LoopFs): void {
    if (this.closed || this.idle.length >= this.idleMax) {
      void this.destroy(fs);
      return;
    }
    this.idle.push(fs);
  }

  private async create(cap: number): Promise<LoopFs> {
    const n = this.seq++;
    const image = join(this.o.dir, `${process.pid}.${n}.img`);
    const mount = join(this.o.dir, `${process.pid}.${n}`);
    await mkdir(mount, { recursive: true, mode: 0o700 });
    let mounted = false;
    try {
      await writeSparse(image, loopImageBytes(cap));
      const r = await runCommand("mkfs.ext4", [...MKFS_ARGS, image]);
      if (r.code !== 0) throw new Error(`mkfs.ext4 failed: ${r.stderr.trim()}`);
      await this.m.loop(image, mount, "ext4", MOUNT_OPTIONS);
      mounted = true;
      const s = await statfs(mount);
      const surplus = Math.floor((s.bavail * s.bsize - cap) / 4096) * 4096;
      if (surplus > 0) {
        const f = await runCommand("fallocate", ["-l", String(surplus), join(mount, PAD_FILE)]);
        if (f.code !== 0) throw new Error(`fallocate failed: ${f.stderr.trim()}`);
      }
    } catch (err) {
      if (mounted) await unmount(mount, this.m).catch(() => undefined);
      await rm(image, { force: true });
      await rm(mount, { recursive: true, force: true });
      throw internal("could not create the run's scratch filesystem", { cause: err });
    }
    return { image, mount, cap };
  }

  private async destroy(fs: LoopFs): Promise<void> {
    try {
      await unmount(fs.mount, this.m);
      await rm(fs.mount, { recursive: true, force: true });
      await rm(fs.image, { force: true });
    } catch (err) {
      this.o.logger.warn({ err }, "could not remove a scratch filesystem");
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.warming.values()]);
    const idle = this.idle.splice(0);
    await Promise.all(idle.map((f) => this.destroy(f)));
    // Empty once every filesystem is gone (runs still holding one keep it).
    await rmdir(this.o.dir).catch(() => undefined);
  }
}

async function writeSparse(path: string, bytes: number): Promise<void> {
  const h = await open(path, "wx", 0o600);
  try {
    await h.truncate(bytes);
  } finally {
    await h.close();
  }
}
