import { rename, rm } from "node:fs/promises";
import { internal } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { neutralizeDevices } from "../layers/inert-device.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { OperationRecord } from "../metadata/repos/operation-repo.js";
import type { DiffStats } from "../runtime/rootfs.js";
import { type LayerStore, runLayerId } from "../snapshots/layer-store.js";
import { runCommand } from "../sys/run-command.js";
import type { InstanceMetadata } from "./spawn-request.js";

interface CommitDeps {
  store: MetadataStore;
  layers: LayerStore;
}

/** Snapshot: the upper becomes a layer by rename (or copy), the image row is one transaction. */
export async function commitRun(
  d: CommitDeps,
  op: OperationRecord,
  meta: InstanceMetadata,
  parent: ImageRecord,
  env: Record<string, string>,
  upper: string,
  diff: DiffStats,
  copy: boolean,
): Promise<ImageRecord> {
  const envChanged = meta.preserve_env && JSON.stringify(env) !== JSON.stringify(parent.env ?? {});
  if (diff.empty && !envChanged) return parent;
  const layerId = diff.empty ? null : runLayerId();
  // The parent's chain may have been flattened while we ran: build on its current form.
  const base = (await d.store.images.getAny(parent.id))?.mountChain ?? parent.mountChain;
  // The sandbox made device nodes (CAP_MKNOD; the diff walk counted them): none reaches the
  // layer store live.
  if (layerId !== null && diff.devices > 0) {
    await neutralizeDevices(upper).catch((err: unknown) => {
      throw internal("could not neutralise device nodes in the run's changes", { cause: err });
    });
  }
  if (layerId !== null) {
    if (copy) {
      // From another filesystem: GNU cp keeps whiteouts (0/0 devices), opaque xattrs, owners, modes.
      const staged = await d.layers.stage();
      try {
        const r = await runCommand("cp", ["-a", "--no-target-directory", `${upper}/.`, staged]);
        if (r.code !== 0) {
          const full = /No space left on device|Disk quota exceeded/.test(r.stderr);
          throw Object.assign(new Error(`cp failed: ${r.stderr.trim()}`), full ? { code: "ENOSPC" } : {});
        }
        await d.layers.publish(staged, layerId);
      } catch (err) {
        await d.layers.discard(staged);
        throw internal("could not copy the run's changes into the layer store", { cause: err });
      }
    } else {
      await rename(upper, d.layers.path(layerId));
    }
  }
  const img: ImageRecord = {
    id: newId(),
    projectId: op.projectId,
    parentId: parent.id,
    layerId,
    mountChain: layerId === null ? base : [layerId, ...base],
    depth: parent.depth + 1,
    env: meta.preserve_env ? env : parent.env,
    operationId: op.id,
    size: parent.size + diff.bytes,
    source: null,
    createdAt: Date.now(),
  };
  try {
    await d.store.transaction(async (tx) => {
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
    });
  } catch (err) {
    if (layerId !== null) await rm(d.layers.path(layerId), { recursive: true, force: true });
    throw internal("could not record the result image", { cause: err });
  }
  return img;
}
