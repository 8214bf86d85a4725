import { mkdirSync } from "node:fs";
import { mkdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import { internal } from "../../../core/errors.js";
import type { Logger } from "../../../observability/logger.js";
import { type Mounter, mounter } from "../../../sys/mount.js";
import { checkPath, unmount } from "../../../sys/overlay-mount.js";
import { type RunScratch, reachedCap, type ScratchBackend } from "./scratch.js";

/**
 * A size-capped tmpfs per run: mounting costs a fraction of a millisecond and works on any
 * host, but the data lives in memory (charged to the sandbox's memory cgroup), so it suits
 * small caps only. Whiteouts and trusted xattrs survive on tmpfs; commit is a copy.
 */
export class TmpfsScratch implements ScratchBackend {
  readonly name = "tmpfs";
  readonly enforced = true;

  constructor(private readonly logger: Logger) {}

  async acquire(runDir: string, capBytes: number): Promise<RunScratch> {
    const dir = join(runDir, "scratch");
    await mountScratch(dir, capBytes);
    const upper = join(dir, "upper");
    const work = join(dir, "work");
    mkdirSync(upper);
    mkdirSync(work);
    let mounted = true;
    return {
      upper,
      work,
      commit: "copy",
      reachedCap: async () => {
        const fs = await statfs(dir);
        return reachedCap(fs.bavail * fs.bsize, capBytes);
      },
      release: async () => {
        if (!mounted) return;
        mounted = false;
        await unmount(dir).catch((err: unknown) => this.logger.warn({ err }, "scratch unmount failed"));
      },
    };
  }

  async close(): Promise<void> {}
}

/**
 * A size-capped scratch filesystem for a run's upper and work dirs: writes past `bytes` fail
 * inside the sandbox with ENOSPC, which is how `max_layer_bytes` is enforced where the layer
 * store's filesystem has no project quotas. tmpfs keeps overlay's whiteouts and trusted xattrs.
 */
export async function mountScratch(target: string, bytes: number, m: Mounter = mounter()): Promise<void> {
  checkPath(target, "scratch mount target");
  await mkdir(target, { recursive: true });
  const size = Math.max(4096, Math.ceil(bytes / 4096) * 4096);
  await m.tmpfs(target, `size=${size},mode=0700`).catch((err: unknown) => {
    throw internal("scratch mount failed", { cause: err });
  });
}
