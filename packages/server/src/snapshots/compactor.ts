import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { internal } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { Logger } from "../observability/logger.js";
import { mountRootfs, unmount } from "../sys/overlay-mount.js";
import type { LayerStore } from "./layer-store.js";
import type { LeaseManager } from "./leases.js";
import { copyTree, type PublishFaults, publishLayer } from "./publish.js";

interface CompactorDeps {
  store: MetadataStore;
  layers: LayerStore;
  leases: LeaseManager;
  /** Where the read-only views being copied are mounted (the data dir's runs/). */
  scratchDir: string;
  logger: Logger;
  faults?: PublishFaults | undefined;
}

/** Chains longer than this are flattened; 24 short names keep the mount options ~1 KiB. */
export const MAX_MOUNT_CHAIN = 24;
/** A commit never leaves a chain this long: the run waits for the flatten instead. */
const HARD_MOUNT_CHAIN = 200;

/**
 * Keeps every image's mount chain short. An image whose chain passes the threshold gets a
 * materialised base: its merged view copied into one new layer, which becomes its whole mount
 * chain. Identity and lineage (parent links) never change, and children created afterwards start
 * from the short chain, so run cost stays flat however deep agents chain runs.
 */
export class Compactor {
  private readonly queue = new Map<string, ImageRecord>();
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly d: CompactorDeps,
    private readonly maxChain = MAX_MOUNT_CHAIN,
  ) {}

  /**
   * Called for every new image; cheap when nothing needs doing. Past the hard bound the caller
   * waits for the flatten (only when flattening falls far behind a fast chain of runs).
   */
  async consider(img: ImageRecord): Promise<void> {
    if (this.closed || img.mountChain.length <= this.maxChain) return;
    if (img.mountChain.length >= HARD_MOUNT_CHAIN) {
      await this.idle();
      await this.flatten(img);
      return;
    }
    this.queue.set(img.id, img);
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Waits for queued work (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.clear();
    await this.idle();
  }

  private async drain(): Promise<void> {
    while (!this.closed && this.queue.size > 0) {
      // Newest first: it is the one agents are about to run from. Flattening it also shortens
      // every queued ancestor's descendants, so older entries usually need nothing afterwards.
      const [id, img] = [...this.queue.entries()].pop() as [string, ImageRecord];
      this.queue.delete(id);
      try {
        const t0 = Date.now();
        await this.flatten(img);
        this.d.logger.info(
          { imageId: img.id, from: img.mountChain.length, ms: Date.now() - t0 },
          "image chain flattened",
        );
      } catch (err) {
        this.d.logger.warn({ err, imageId: img.id }, "flattening failed; the image keeps its long chain");
      }
    }
  }

  /**
   * The image's merged view copied into one new layer, which becomes the mount chain of the
   * image and of every image built on its old chain. The image is leased while it copies (its
   * old chain must not be collected under the copy). Null when there was nothing to do.
   */
  async flatten(img: ImageRecord): Promise<string | null> {
    const current = await this.d.store.images.getAny(img.id);
    if (!current || current.mountChain.length <= this.maxChain) return null;
    const chain = current.mountChain;
    return this.d.leases.with(
      { kind: "flatten", projectId: current.projectId, images: [current.id], layers: chain },
      async () => {
        const layerId = `f${newId().replace(/-/g, "").slice(0, 24)}`;
        // No live device node to carry over: layers hold stand-ins (applied, committed, or
        // converted once at start-up), and cp -a keeps their device records.
        const fill = (staged: string) => this.copyMerged(chain, staged);
        await publishLayer(this.d, layerId, { fill }, async (tx) => {
          await tx.images.insertLayer({
            id: layerId,
            kind: "flat",
            chainId: null,
            size: current.size,
            entries: 0,
            createdAt: Date.now(),
          });
          // The image and every descendant built on its old chain now mount the flat layer.
          await tx.images.replaceChainSuffix(chain, [layerId]);
        });
        return layerId;
      },
    );
  }

  /** Mounts the chain read-only beside the runs and copies what it shows into `staged`. */
  private async copyMerged(chain: readonly string[], staged: string): Promise<void> {
    const target = join(this.d.scratchDir, `flat-${newId()}`);
    await mkdir(target, { recursive: true });
    let mounted = false;
    try {
      await mountRootfs({ lowers: this.d.layers.paths(chain), target, readOnly: true }).catch(
        (err: unknown) => {
          throw internal("overlay mount failed", { cause: err });
        },
      );
      mounted = true;
      await copyTree(target, staged, "the merged view");
      await unmount(target);
      mounted = false;
    } finally {
      if (mounted) await unmount(target).catch(() => undefined);
      await rm(target, { recursive: true, force: true });
    }
  }
}
