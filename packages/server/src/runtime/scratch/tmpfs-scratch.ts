import { mkdirSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../observability/logger.js";
import { mountScratch, unmount } from "../rootfs.js";
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
