import { overLimitMessage } from "../config/limits.js";
import { invalidArgument } from "../core/errors.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { OperationRecord } from "../metadata/repos/operation-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { HandlerContext, HandlerOutcome, OperationHandler } from "../operations/operation-handler.js";
import type { OperationQueue } from "../operations/operation-queue.js";
import { formatReference, parseImageReference } from "../registry/reference.js";
import type { Credentials, RegistryClient } from "../registry/registry-client.js";
import type { ImageImporter } from "./image-importer.js";
import type { ImportBody } from "./import-body.js";

export const MASKED = "<MASKED>";
export const DEFAULT_IMPORT_TIMEOUT = 300;

/** The normalised import request as stored in the operation's metadata (credentials masked). */
export interface ImportMetadata {
  registry: { url: string; credentials?: { username: string; password: string } };
  tag: string | null;
  timeout: number;
  [key: string]: unknown;
}

/** The stored form of a schema-checked body: the reference normalised, credentials masked, limits applied. */
export function parseImportBody(
  body: ImportBody,
  maxTimeout: number,
): { meta: ImportMetadata; credentials: Credentials | undefined } {
  const { registry } = body;
  const url = typeof registry === "string" ? registry : registry.url;
  const creds = (typeof registry === "string" ? undefined : registry.credentials) ?? body.credentials;
  const ref = parseImageReference(url);
  const username = creds?.username ?? "";
  const password = creds?.password ?? "";
  const credentials = username !== "" || password !== "" ? { username, password } : undefined;
  const timeout = body.timeout ?? DEFAULT_IMPORT_TIMEOUT;
  if (timeout > maxTimeout) throw invalidArgument(overLimitMessage("images_import_max_timeout", maxTimeout));
  const meta: ImportMetadata = {
    registry: {
      url: `docker://${formatReference(ref)}`,
      ...(credentials ? { credentials: { username: credentials.username, password: MASKED } } : {}),
    },
    tag: body.tag ? body.tag : null,
    timeout,
  };
  return { meta, credentials };
}

/**
 * Runs `image_import` operations. Credentials live only in memory for the duration of the pull
 * (a restart fails in-flight imports anyway), never in the database or the logs.
 */
export class ImportHandler implements OperationHandler {
  readonly kind = "image_import" as const;
  private readonly credentials = new Map<string, Credentials>();

  constructor(
    private readonly store: MetadataStore,
    private readonly registry: RegistryClient,
    private readonly importer: ImageImporter,
    /** The project's images_import_max_unpacked_bytes (none: unlimited). */
    private readonly maxUnpackedBytesOf?: (project: Project) => number,
  ) {}

  async start(
    queue: OperationQueue,
    project: Project,
    body: ImportBody,
    maxTimeout: number,
  ): Promise<OperationRecord> {
    const { meta, credentials } = parseImportBody(body, maxTimeout);
    const op = await queue.enqueue(project, "image_import", meta);
    if (credentials) this.credentials.set(op.id, credentials);
    return op;
  }

  async run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome> {
    const meta = op.metadata as ImportMetadata;
    const credentials = this.credentials.get(op.id);
    this.credentials.delete(op.id);
    const timeout = AbortSignal.timeout(meta.timeout * 1000);
    const signal = AbortSignal.any([ctx.signal, timeout]);
    const project = await this.store.projects.findById(op.projectId);
    if (!project) return { status: "FAILED", error: "project no longer exists" };
    try {
      const ref = parseImageReference(meta.registry.url);
      const resolved = await this.registry.resolveManifest(ref, { credentials, signal });
      await ctx.emit(0, "progress", {
        stage: "resolved",
        reference: resolved.reference,
        manifest_digest: resolved.manifestDigest,
        layers: resolved.manifest.layers.length,
      });
      const { image, size } = await this.importer.import({
        project,
        resolved,
        openLayer: (d, s) => this.registry.fetchBlob(ref, d, { credentials, signal: s }),
        tag: meta.tag,
        operationId: op.id,
        signal,
        progress: (p) => ctx.emit(0, "progress", { stage: "layer", ...p }),
        ...(this.maxUnpackedBytesOf ? { maxUnpackedBytes: this.maxUnpackedBytesOf(project) } : {}),
      });
      return {
        status: "SUCCESS",
        resultImageId: image.id,
        resultTag: meta.tag,
        imageSize: size,
        completion: { result_image_uuid: image.id, image_size_bytes: size },
      };
    } catch (err) {
      if (timeout.aborted && !ctx.signal.aborted)
        return { status: "FAILED", error: `import timed out after ${meta.timeout} s` };
      throw err;
    }
  }
}
