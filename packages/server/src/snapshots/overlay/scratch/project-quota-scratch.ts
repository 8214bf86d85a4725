import { randomInt } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { resourceExhausted } from "../../../core/errors.js";
import type { Logger } from "../../../observability/logger.js";
import type { NativeSys } from "../../../sys/native-sys.js";
import { type RunScratch, reachedCap, type ScratchBackend } from "./scratch.js";

/** Project ids we hand out: clear of the small ids admins give by hand (/etc/projid). */
export const FIRST_PROJECT_ID = 0x43540000;
const LAST_PROJECT_ID = 0x7ffffff0;

/**
 * containerd's and Docker's model: each run's scratch dir gets its own project id with
 * PROJINHERIT and a block hard limit of the cap, so the filesystem itself refuses writes past
 * it (EDQUOT). The upper stays on the data filesystem and commit is a rename.
 *
 * A committed layer keeps its files' project id (rewriting it would cost a walk of the diff), so
 * an id is handed out again only when the filesystem reports no blocks and no inodes for it:
 * ids of layers that still exist are skipped, and a new run never inherits another's usage.
 */
export class ProjectQuotaScratch implements ScratchBackend {
  readonly name = "project-quota";
  readonly enforced = true;
  // A random start: ids of layers kept from earlier starts cluster at the bottom, and each one
  // skipped costs a synchronous quotactl.
  private next = FIRST_PROJECT_ID + randomInt(LAST_PROJECT_ID - FIRST_PROJECT_ID + 1);
  private readonly live = new Set<number>();
  private readonly sameFsAsLayers: boolean;

  constructor(
    private readonly sys: NativeSys,
    private readonly runsDir: string,
    layersDir: string,
    private readonly logger: Logger,
  ) {
    this.sameFsAsLayers = statSync(runsDir).dev === statSync(layersDir).dev;
  }

  private allocate(): number {
    for (let tries = 0; tries < 1_000_000; tries++) {
      const id = this.next;
      this.next = id >= LAST_PROJECT_ID ? FIRST_PROJECT_ID : id + 1;
      if (this.live.has(id)) continue;
      const q = this.sys.projectQuota(this.runsDir, id);
      if (q.usedBytes === 0 && q.usedInodes === 0) {
        this.live.add(id);
        return id;
      }
    }
    throw resourceExhausted("no free project id for the run's scratch quota");
  }

  async acquire(runDir: string, capBytes: number): Promise<RunScratch> {
    const dir = join(runDir, "scratch");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = this.allocate();
    try {
      this.sys.setProjectId(dir, id);
      this.sys.setProjectLimit(dir, id, capBytes);
    } catch (err) {
      this.live.delete(id);
      throw err;
    }
    const upper = join(dir, "upper");
    const work = join(dir, "work");
    mkdirSync(upper);
    mkdirSync(work);
    let released = false;
    return {
      upper,
      work,
      commit: this.sameFsAsLayers ? "rename" : "copy",
      reachedCap: async () => {
        const q = this.sys.projectQuota(dir, id);
        return reachedCap(capBytes - q.usedBytes, capBytes);
      },
      release: async () => {
        if (released) return;
        released = true;
        // The id's limit goes; its usage (a committed layer) keeps it from being reused.
        try {
          this.sys.setProjectLimit(this.runsDir, id, 0);
        } catch (err) {
          this.logger.warn({ err, projectId: id }, "could not clear a run's project quota");
        }
        this.live.delete(id);
      },
    };
  }

  async close(): Promise<void> {}
}
