import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RunScratch, ScratchBackend } from "./scratch.js";

/**
 * Plain directories on the data filesystem: commit is a rename, but nothing stops a run from
 * writing past its cap (it is checked after the run and the image is then refused). Only used
 * when the host offers neither project quotas nor loop devices; doctor and the start-up log
 * say so.
 */
export class PlainScratch implements ScratchBackend {
  readonly name = "plain";
  readonly enforced = false;

  async acquire(runDir: string): Promise<RunScratch> {
    const upper = join(runDir, "upper");
    const work = join(runDir, "work");
    mkdirSync(upper, { recursive: true });
    mkdirSync(work, { recursive: true });
    return { upper, work, commit: "rename", reachedCap: async () => false, release: async () => {} };
  }

  async close(): Promise<void> {}
}
