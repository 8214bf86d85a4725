import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { internal } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { Logger } from "../observability/logger.js";
import { mountRootfs, unmount } from "../runtime/rootfs.js";
import type { LayerStore } from "../snapshots/layer-store.js";
import { runCommand } from "../sys/run-command.js";

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
    private readonly store: MetadataStore,
    private readonly layers: LayerStore,
    private readonly scratchDir: string,
    private readonly logger: Logger,
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
        this.logger.info(
          { imageId: img.id, from: img.mountChain.length, ms: Date.now() - t0 },
          "image chain flattened",
        );
      } catch (err) {
        this.logger.warn({ err, imageId: img.id }, "flattening failed; the image keeps its long chain");
      }
    }
  }

  async flatten(img: ImageRecord): Promise<string> {
    const current = await this.store.images.getAny(img.id);
    if (!current || current.mountChain.length <= this.maxChain) return current?.mountChain[0] ?? "";
    const target = join(this.scratchDir, `flat-${newId()}`);
    await mkdir(target, { recursive: true });
    const staged = await this.layers.stage();
    let mounted = false;
    try {
      await mountRootfs({ lowers: this.layers.paths(current.mountChain), target, readOnly: true });
      mounted = true;
      // GNU cp keeps ownership, modes, times, xattrs (capabilities), devices, fifos and hardlinks.
      const cp = await runCommand("cp", ["-a", "--no-target-directory", `${target}/.`, staged]).catch(
        (err: unknown) => {
          throw internal("copying the merged view failed", { cause: err });
        },
      );
      if (cp.code !== 0)
        throw internal("copying the merged view failed", {
          cause: new Error(`cp → ${cp.signal ?? cp.code}: ${cp.stderr.trim().slice(0, 2000)}`),
        });
      await unmount(target);
      mounted = false;
      // No live device node to carry over: layers hold stand-ins (applied, committed, or
      // converted once at start-up), and cp -a keeps their device records.
      const layerId = `f${newId().replace(/-/g, "").slice(0, 24)}`;
      await this.layers.publish(staged, layerId);
      await this.store.transaction(async (tx) => {
        await tx.images.insertLayer({
          id: layerId,
          kind: "flat",
          chainId: null,
          size: current.size,
          entries: 0,
          createdAt: Date.now(),
        });
        // The image and every descendant built on its old chain now mount the flat layer.
        await tx.images.replaceChainSuffix(current.mountChain, [layerId]);
      });
      return layerId;
    } catch (err) {
      await this.layers.discard(staged);
      throw err;
    } finally {
      if (mounted) await unmount(target).catch(() => undefined);
      await rm(target, { recursive: true, force: true });
    }
  }
}
