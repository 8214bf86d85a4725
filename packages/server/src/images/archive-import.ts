/**
 * Imports an image from a local archive (`docker save`, Docker ≥ 25 save, OCI layout tar) with
 * the same pipeline as a registry pull: every layer verified, staged and published by rename,
 * then one image row. Used by the admin CLI (`contree-server images import-archive`), which may
 * run beside a live server: SQLite is in WAL mode and layer dirs are published atomically.
 */
import { stat } from "node:fs/promises";
import { invalidArgument, notFound } from "../core/errors.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import { openImageArchive } from "../registry/archive-reader.js";
import type { Platform } from "../registry/registry-client.js";
import type { LayerStore } from "../snapshots/layer-store.js";
import { ImageImporter, type ImportProgress } from "./image-importer.js";
import { validateTag } from "./tag-grammar.js";

interface ArchiveImportOptions {
  store: MetadataStore;
  layers: LayerStore;
  project: Project;
  /** Path of the archive on this host. */
  path: string;
  /** Tag to put on the imported image in `project` (validated); null leaves it untagged. */
  tag: string | null;
  /** Picks one image of a multi-image archive (a RepoTag or an OCI ref name). */
  image?: string | undefined;
  /** Defaults to the host platform. */
  platform?: Platform | undefined;
  operationId?: string | null;
  signal?: AbortSignal;
  progress?: ImportProgress;
}

interface ArchiveImportResult {
  image: ImageRecord;
  size: number;
  /** What the archive said the image was (RepoTag, ref name or "archive"). */
  reference: string;
  format: "oci" | "docker";
  layers: number;
  reusedLayers: number;
}

export async function importArchive(o: ArchiveImportOptions): Promise<ArchiveImportResult> {
  const tag = o.tag === null ? null : validateTag(o.tag);
  const st = await stat(o.path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") throw notFound("archive file not found");
    throw invalidArgument(`cannot read the archive (${err.code ?? "error"})`);
  });
  if (!st.isFile()) throw invalidArgument("the archive must be a regular file");
  if (st.size < 1024) throw invalidArgument("not a valid image archive: the file is too small to be a tar");
  const archive = await openImageArchive(o.path, { platform: o.platform, tag: o.image });
  const importer = new ImageImporter(o.store, o.layers);
  let reusedLayers = 0;
  const { image, size } = await importer.import({
    project: o.project,
    resolved: archive,
    openLayer: async (d, signal) => archive.openBlob(d, { signal }),
    tag,
    operationId: o.operationId ?? null,
    signal: o.signal ?? new AbortController().signal,
    progress: async (p) => {
      if (p.reused) reusedLayers++;
      await o.progress?.(p);
    },
  });
  return {
    image,
    size,
    reference: archive.reference,
    format: archive.format,
    layers: archive.manifest.layers.length,
    reusedLayers,
  };
}
