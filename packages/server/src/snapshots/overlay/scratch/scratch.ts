/**
 * Where a run's overlay upper and work dirs live, so that `resources_limits.max_layer_bytes`
 * holds while the run writes: past the cap, writes fail inside the sandbox (ENOSPC/EDQUOT).
 * Backends (picked by main.ts through `selectScratch`):
 *  - project-quota: a per-run project id on a dir of the data filesystem (XFS, or ext4 with the
 *    project feature) with a block hard limit; commit is a rename; set-up is a few syscalls;
 *  - tmpfs: a size-capped tmpfs per run (small caps; its pages count as the sandbox's memory);
 *  - loop: a sparse ext4 image of the cap's size per run, loop-mounted, from a warm pool;
 *  - plain: dirs on the data filesystem, the cap checked only after the run (no enforcement).
 */

export interface RunScratch {
  readonly upper: string;
  readonly work: string;
  /** How the upper becomes a layer: `rename` (same filesystem as the layer store) or `copy`. */
  readonly commit: "rename" | "copy";
  /** True when the run's writes ran into the cap (so they failed inside the sandbox). */
  reachedCap(): Promise<boolean>;
  /** Gives the space back; idempotent, never throws (failures are logged by the backend). */
  release(): Promise<void>;
}

export interface ScratchBackend {
  /** Short name for logs and doctor: project-quota, tmpfs, loop, plain, or tiered names. */
  readonly name: string;
  /** Whether writes past the cap fail while the run writes (false: checked after the run). */
  readonly enforced: boolean;
  /** Scratch for one run below `runDir` (which the caller removes afterwards), capped at `capBytes`. */
  acquire(runDir: string, capBytes: number): Promise<RunScratch>;
  /** Releases what the backend keeps between runs (a warm pool); called at shutdown. */
  close(): Promise<void>;
}

/**
 * Whether a run that leaves `availBytes` of its `capBytes` unused ran into the cap. Filesystems
 * refuse a write before the last byte is used (ext4 reserves blocks for a write's metadata
 * first; a 1 MiB write that does not fit whole may fail whole), so "full" is "less left than a
 * large write": up to 2 MiB, or 1/32 of a small cap, at least 64 KiB.
 */
export function reachedCap(availBytes: number, capBytes: number): boolean {
  return availBytes < Math.max(64 * 1024, Math.min(2 * 1024 * 1024, capBytes / 32));
}

/** Caps up to `smallMax` go to `small`, the rest to `large`. */
export class TieredScratch implements ScratchBackend {
  readonly name: string;
  readonly enforced: boolean;

  constructor(
    private readonly small: ScratchBackend,
    readonly smallMax: number,
    private readonly large: ScratchBackend,
  ) {
    this.name = `${small.name} (caps up to ${smallMax} bytes) + ${large.name}`;
    this.enforced = small.enforced && large.enforced;
  }

  acquire(runDir: string, capBytes: number): Promise<RunScratch> {
    return (capBytes <= this.smallMax ? this.small : this.large).acquire(runDir, capBytes);
  }

  async close(): Promise<void> {
    await Promise.all([this.small.close(), this.large.close()]);
  }
}
