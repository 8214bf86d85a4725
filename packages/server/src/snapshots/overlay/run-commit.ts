import { internal } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { neutralizeDevices } from "../../layers/inert-device.js";
import type { MetadataStore, Repos } from "../../metadata/metadata-store.js";
import type { ImageRecord } from "../../metadata/repos/image-repo.js";
import { type LayerStore, runLayerId } from "../layer-store.js";
import { copyTree, type LayerSource, type PublishFaults, publishLayer } from "../publish.js";
import type { CommitRequest, CommitResult } from "../snapshotter.js";
import type { DiffStats } from "./diff-stats.js";

interface CommitDeps {
  store: MetadataStore;
  layers: LayerStore;
  faults?: PublishFaults | undefined;
}

/** What a run left to commit: its upper (with the walk's figures) and how it reaches the store. */
export interface RunChanges {
  upper: string;
  diff: DiffStats;
  /** `rename`: the upper is on the layer store's filesystem; `copy`: it is not. */
  via: "rename" | "copy";
}

/** A run's changes become a layer (through the shared publish sequence) and an image, in one transaction. */
export async function commitRun(
  d: CommitDeps,
  parent: ImageRecord,
  c: CommitRequest,
  changes: RunChanges,
): Promise<CommitResult> {
  const { diff, upper } = changes;
  const envChanged = c.env !== undefined && JSON.stringify(c.env) !== JSON.stringify(parent.env ?? {});
  if (diff.empty && !envChanged) return { kind: "unchanged", image: parent };
  const layerId = diff.empty ? null : runLayerId();
  // The parent's chain may have been flattened while we ran: build on its current form.
  const base = (await d.store.images.getAny(parent.id))?.mountChain ?? parent.mountChain;
  const img: ImageRecord = {
    id: newId(),
    projectId: c.projectId,
    parentId: parent.id,
    layerId,
    mountChain: layerId === null ? base : [layerId, ...base],
    depth: parent.depth + 1,
    env: c.env ?? parent.env,
    operationId: c.operationId,
    size: parent.size + diff.bytes,
    source: null,
    createdAt: Date.now(),
  };
  const record = async (tx: Repos) => {
    if (layerId !== null) {
      await tx.images.insertLayer({
        id: layerId,
        kind: "run",
        chainId: null,
        size: diff.bytes,
        entries: diff.entries,
        createdAt: img.createdAt,
      });
    }
    await tx.images.insert(img);
  };
  if (layerId === null) {
    await d.store.transaction(record).catch((err: unknown) => {
      throw internal("could not record the result image", { cause: err });
    });
    return { kind: "committed", image: img };
  }
  // The sandbox made device nodes (CAP_MKNOD; the diff walk counted them): none reaches the
  // layer store live.
  if (diff.devices > 0) {
    await neutralizeDevices(upper).catch((err: unknown) => {
      throw internal("could not neutralise device nodes in the run's changes", { cause: err });
    });
  }
  const source: LayerSource =
    changes.via === "rename"
      ? { rename: upper }
      : { fill: (staged) => copyTree(upper, staged, "the run's changes into the layer store") };
  let recording = false;
  await publishLayer(d, layerId, source, (tx) => {
    recording = true;
    return record(tx);
  }).catch((err: unknown) => {
    throw internal(
      recording
        ? "could not record the result image"
        : "could not copy the run's changes into the layer store",
      { cause: err },
    );
  });
  return { kind: "committed", image: img };
}
