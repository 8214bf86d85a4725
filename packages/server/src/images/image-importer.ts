import { createHash } from "node:crypto";
import { pipeline, type Readable, Transform } from "node:stream";
import { type Digest, hexOf } from "../core/digest.js";
import { dataLoss } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { applyLayer } from "../layers/layer-applier.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import { decompress } from "../registry/decompress.js";
import type { Descriptor, ResolvedImage } from "../registry/registry-client.js";
import type { LayerStore } from "./layer-store.js";

export type ImportProgress = (e: {
  layer: number;
  layers: number;
  digest: string;
  size: number;
  reused: boolean;
}) => Promise<void> | void;

export interface ImportRequest {
  project: Project;
  resolved: ResolvedImage;
  /** Opens a layer blob as a verified stream (registry pull or local archive). */
  openLayer(d: Descriptor, signal: AbortSignal): Promise<Readable>;
  tag: string | null;
  operationId: string | null;
  signal: AbortSignal;
  progress?: ImportProgress;
}

/** OCI chain ids: a layer's content depends on everything below it, so it is keyed by the chain. */
export function chainIds(diffIds: readonly Digest[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(
      prev === undefined ? hexOf(d) : createHash("sha256").update(`sha256:${prev} ${d}`).digest("hex"),
    );
  }
  return out;
}

export function importedLayerId(chainIdHex: string): string {
  return `i${chainIdHex.slice(0, 32)}`;
}

/**
 * Brings an image in: each layer not yet stored is streamed (verified by the source),
 * decompressed, checked against its diff id and applied into a staging dir, which is published
 * by a rename. Only after every layer is in place does the image row appear, so a failed or
 * cancelled import never leaves anything visible.
 */
export class ImageImporter {
  constructor(
    private readonly store: MetadataStore,
    private readonly layers: LayerStore,
  ) {}

  async import(req: ImportRequest): Promise<{ image: ImageRecord; size: number }> {
    const { manifest, config } = req.resolved;
    if (config.diffIds.length !== manifest.layers.length) {
      throw dataLoss("image config lists a different number of layers than the manifest");
    }
    const chains = chainIds(config.diffIds);
    const ids = chains.map(importedLayerId);
    let total = 0;
    for (let i = 0; i < manifest.layers.length; i++) {
      req.signal.throwIfAborted();
      const desc = manifest.layers[i] as Descriptor;
      const id = ids[i] as string;
      const existing = await this.store.images.layer(id);
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
      const lowers = this.layers.paths(ids.slice(0, i).reverse());
      const staged = await this.layers.stage();
      try {
        const applied = await this.applyOne(req, desc, config.diffIds[i] as Digest, staged, lowers);
        await this.layers.publish(staged, id);
        await this.store.images.insertLayer({
          id,
          kind: "import",
          chainId: chains[i] as string,
          size: applied.bytes,
          entries: applied.entries,
          createdAt: Date.now(),
        });
        total += applied.bytes;
      } catch (err) {
        await this.layers.discard(staged);
        throw err;
      }
      await req.progress?.({
        layer: i + 1,
        layers: ids.length,
        digest: desc.digest,
        size: desc.size,
        reused: false,
      });
    }
    req.signal.throwIfAborted();
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
      await tx.images.insert(image);
      if (req.tag !== null) await tx.images.setTag(req.project.id, req.tag, image.id);
    });
    return { image, size: total };
  }

  private async applyOne(
    req: ImportRequest,
    desc: Descriptor,
    diffId: Digest,
    dest: string,
    lowers: string[],
  ) {
    const blob = await req.openLayer(desc, req.signal);
    const hash = createHash("sha256");
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, cb) {
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
    try {
      applied = await applyLayer(hashing, { dest, lowers, signal: req.signal });
    } catch (err) {
      blob.destroy();
      hashing.destroy();
      await streamed;
      throw streamError ?? err;
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
