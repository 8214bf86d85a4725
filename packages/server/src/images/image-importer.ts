import { createHash } from "node:crypto";
import { pipeline, type Readable, Transform } from "node:stream";
import { type Digest, hexOf } from "../core/digest.js";
import { dataLoss, payloadTooLarge } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { applyLayer } from "../layers/layer-applier.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import { decompress } from "../registry/decompress.js";
import type { Descriptor, ResolvedImage } from "../registry/registry-client.js";
import type { LayerStore } from "../snapshots/layer-store.js";
import { LeaseManager } from "../snapshots/leases.js";

export type ImportProgress = (e: {
  layer: number;
  layers: number;
  digest: string;
  size: number;
  reused: boolean;
}) => Promise<void> | void;

interface ImportRequest {
  project: Project;
  resolved: ResolvedImage;
  /** Opens a layer blob as a verified stream (registry pull or local archive). */
  openLayer(d: Descriptor, signal: AbortSignal): Promise<Readable>;
  tag: string | null;
  operationId: string | null;
  signal: AbortSignal;
  progress?: ImportProgress;
  /**
   * Most bytes this import may unpack (images_import_max_unpacked_bytes), counted on the
   * decompressed tar streams as they arrive: file contents plus 512 bytes of header per entry,
   * so millions of empty files count too. Past it the import stops at once.
   */
  maxUnpackedBytes?: number;
}

/** OCI chain ids: a layer's content depends on everything below it, so it is keyed by the chain. */
function chainIds(diffIds: readonly Digest[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(
      prev === undefined ? hexOf(d) : createHash("sha256").update(`sha256:${prev} ${d}`).digest("hex"),
    );
  }
  return out;
}

function importedLayerId(chainIdHex: string): string {
  return `i${chainIdHex.slice(0, 32)}`;
}

/**
 * Brings an image in: each layer not yet stored is streamed (verified by the source),
 * decompressed, checked against its diff id and applied into a staging dir, which is published
 * by a rename. Only after every layer is in place does the image row appear, so a failed or
 * cancelled import never leaves anything visible.
 */
export class ImageImporter {
  private readonly leases: LeaseManager;

  constructor(
    private readonly store: MetadataStore,
    private readonly layers: LayerStore,
    /** Free-space guard: an import already running stops with 507 once the disk runs short. */
    private readonly storage?: { assertWritable(): void },
    leases?: LeaseManager,
  ) {
    this.leases = leases ?? new LeaseManager(store);
  }

  async import(req: ImportRequest): Promise<{ image: ImageRecord; size: number }> {
    const { manifest, config } = req.resolved;
    if (config.diffIds.length !== manifest.layers.length) {
      throw dataLoss("image config lists a different number of layers than the manifest");
    }
    const chains = chainIds(config.diffIds);
    const ids = chains.map(importedLayerId);
    // Garbage collection must keep the stored layers this import reuses (it mounts them as
    // lowers and its image will name them) and the ones it publishes before recording them.
    // The lease names every layer of the image; which are stored is read in the lease's own
    // transaction (the lease protocol's check), so a layer the sweep removed first is fetched.
    let stored = new Map<string, { size: number }>();
    const lease = await this.leases.acquire(
      { kind: "import", projectId: req.project.id, layers: ids },
      async (tx) => {
        stored = new Map();
        for (const id of new Set(ids)) {
          const row = await tx.images.layer(id);
          if (row) stored.set(id, row);
        }
      },
    );
    try {
      return await this.importLeased(req, chains, ids, stored);
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  private async importLeased(
    req: ImportRequest,
    chains: string[],
    ids: string[],
    storedAtLease: ReadonlyMap<string, { size: number }>,
  ): Promise<{ image: ImageRecord; size: number }> {
    const { manifest, config } = req.resolved;
    const budget = { max: req.maxUnpackedBytes ?? Number.POSITIVE_INFINITY, used: 0 };
    let total = 0;
    // New layers stay in staging until every layer is in place: a failed or cancelled import
    // leaves no layer dir and no layer row behind, only staging dirs that are removed here.
    const staged: Array<{ id: string; dir: string; chainId: string; bytes: number; entries: number }> = [];
    const dirOf = new Map<string, string>();
    // Layer dirs this import published: removed again if a later publish or the final
    // transaction fails (e.g. SQLITE_FULL), unless a row (another import's) now names them.
    const published: string[] = [];
    try {
      for (let i = 0; i < manifest.layers.length; i++) {
        req.signal.throwIfAborted();
        const desc = manifest.layers[i] as Descriptor;
        const id = ids[i] as string;
        // One stored since the lease was taken (by another import) is protected by it too.
        const existing = storedAtLease.get(id) ?? (await this.store.images.layer(id));
        if (existing) {
          total += existing.size;
          await req.progress?.({
            layer: i + 1,
            layers: ids.length,
            digest: desc.digest,
            size: desc.size,
            reused: true,
          });
          continue;
        }
        const lowers = ids
          .slice(0, i)
          .reverse()
          .map((l) => dirOf.get(l) ?? this.layers.path(l));
        const dir = await this.layers.stage();
        const layer = { id, dir, chainId: chains[i] as string, bytes: 0, entries: 0 };
        staged.push(layer);
        dirOf.set(id, dir);
        const applied = await this.applyOne(req, desc, config.diffIds[i] as Digest, dir, lowers, budget);
        layer.bytes = applied.bytes;
        layer.entries = applied.entries;
        total += applied.bytes;
        await req.progress?.({
          layer: i + 1,
          layers: ids.length,
          digest: desc.digest,
          size: desc.size,
          reused: false,
        });
      }
      req.signal.throwIfAborted();
      for (const l of staged) {
        if (await this.layers.publish(l.dir, l.id)) published.push(l.id);
        l.dir = "";
      }
      const image: ImageRecord = {
        id: newId(),
        projectId: req.project.id,
        parentId: null,
        layerId: ids[ids.length - 1] ?? null,
        mountChain: [...ids].reverse(),
        depth: 0,
        env: null,
        operationId: req.operationId,
        size: total,
        source: req.resolved.reference,
        createdAt: Date.now(),
      };
      await this.store.transaction(async (tx) => {
        for (const l of staged)
          await tx.images.insertLayer({
            id: l.id,
            kind: "import",
            chainId: l.chainId,
            size: l.bytes,
            entries: l.entries,
            createdAt: image.createdAt,
          });
        await tx.images.insert(image);
        if (req.tag !== null) await tx.images.setTag(req.project.id, req.tag, image.id);
      });
      return { image, size: total };
    } catch (err) {
      await Promise.all(staged.filter((l) => l.dir !== "").map((l) => this.layers.discard(l.dir)));
      await Promise.all(published.map((id) => this.dropPublished(id)));
      throw err;
    }
  }

  private async dropPublished(id: string): Promise<void> {
    try {
      if (await this.store.images.layer(id)) return;
    } catch {
      // the store failing is why we are here; the start-up reclaim removes the dir if we leave it
      return;
    }
    await this.layers.discard(this.layers.path(id));
  }

  private async applyOne(
    req: ImportRequest,
    desc: Descriptor,
    diffId: Digest,
    dest: string,
    lowers: string[],
    budget: { max: number; used: number },
  ) {
    const blob = await req.openLayer(desc, req.signal);
    const hash = createHash("sha256");
    const storage = this.storage;
    const overBudget = (bytes: number) => {
      budget.used += bytes;
      if (budget.used <= budget.max) return null;
      return payloadTooLarge(
        `the image unpacks to more than ${budget.max} bytes (images_import_max_unpacked_bytes): import stopped`,
      );
    };
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        // The decompressed tar: contents padded to 512 bytes plus a 512-byte header per entry.
        const tooLarge = overBudget(chunk.length);
        if (tooLarge) {
          cb(tooLarge);
          return;
        }
        try {
          storage?.assertWritable();
        } catch (err) {
          cb(err as Error);
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    let streamError: Error | undefined;
    const streamed = new Promise<void>((resolve) => {
      pipeline(blob, decompress(desc.mediaType), hashing, (err) => {
        streamError = err ?? undefined;
        resolve();
      });
    });
    let applied: Awaited<ReturnType<typeof applyLayer>>;
    // the stream, destroyed when a copy-up stops the apply, reports only a premature close
    let copyStop: Error | undefined;
    try {
      applied = await applyLayer(hashing, {
        dest,
        lowers,
        signal: req.signal,
        // a hardlink to a lower layer's file copies the whole file into this layer
        onCopy: (bytes) => {
          copyStop = overBudget(bytes) ?? undefined;
          if (copyStop) throw copyStop;
        },
      });
    } catch (err) {
      blob.destroy();
      hashing.destroy();
      await streamed;
      throw copyStop ?? streamError ?? err;
    }
    // Whatever follows the end-of-archive blocks still counts for the digests.
    hashing.resume();
    await streamed;
    if (streamError) throw streamError;
    const got = `sha256:${hash.digest("hex")}`;
    if (got !== diffId) throw dataLoss(`layer ${desc.digest} does not match its diff id (${diffId})`);
    return applied;
  }
}
