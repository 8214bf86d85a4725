import { overLimitMessage } from "../config/limits.js";
import { invalidArgument } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import { ACTIVE_STATUSES, type OperationRecord } from "../metadata/repos/operation-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { HandlerContext, HandlerOutcome, OperationHandler } from "../operations/operation-handler.js";
import type { OperationQueue } from "../operations/operation-queue.js";
import { formatReference, parseImageReference } from "../registry/reference.js";
import type { Credentials, RegistryClient } from "../registry/registry-client.js";
import type { CredentialVault } from "./credential-vault.js";
import type { ImageImporter } from "./image-importer.js";
import type { ImportBody } from "./import-body.js";

const MASKED = "<MASKED>";
const DEFAULT_IMPORT_TIMEOUT = 300;

/** The normalised import request as stored in the operation's metadata (credentials masked). */
interface ImportMetadata {
  registry: { url: string; credentials?: { username: string; password: string } };
  tag: string | null;
  timeout: number;
  [key: string]: unknown;
}

/** The stored form of a schema-checked body: the reference normalised, credentials masked, limits applied. */
function parseImportBody(
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
  // Unasked, the default bends to a lower project limit, as a spawn's does.
  const timeout = body.timeout ?? Math.min(DEFAULT_IMPORT_TIMEOUT, maxTimeout);
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

/** What an import whose credentials cannot be opened any more ends with. */
export const CREDENTIALS_LOST = "credentials were not kept across the restart; import again";

/**
 * Runs `image_import` operations. Registry credentials are sealed in the credential vault from
 * the request until the operation ends (so a queued import survives a restart), never in the
 * database or the logs.
 */
export class ImportHandler implements OperationHandler {
  readonly kind = "image_import" as const;
  /** Operations whose credentials are sealed but whose row may not be inserted yet. */
  readonly #starting = new Set<string>();

  constructor(
    private readonly store: MetadataStore,
    private readonly registry: RegistryClient,
    private readonly importer: ImageImporter,
    private readonly vault: CredentialVault,
    /** The project's images_import_max_unpacked_bytes (none: unlimited). */
    private readonly maxUnpackedBytesOf?: (project: Project) => number,
    /** Throws when the project is at its storage quota (checked before anything is queued). */
    private readonly assertQuota?: (project: Project) => Promise<void>,
  ) {}

  /** Drops the credentials of operations that are over (cancelled while queued, lost in a crash). */
  sweepCredentials(): Promise<number> {
    return this.vault.sweep(async (id) => {
      if (this.#starting.has(id)) return true;
      const op = await this.store.operations.get(id);
      return op !== undefined && ACTIVE_STATUSES.includes(op.status);
    });
  }

  async start(
    queue: OperationQueue,
    project: Project,
    body: ImportBody,
    maxTimeout: number,
  ): Promise<OperationRecord> {
    const { meta, credentials } = parseImportBody(body, maxTimeout);
    await this.assertQuota?.(project);
    if (!credentials) return queue.enqueue(project, "image_import", meta);
    // Sealed before the row exists: the scheduler may run the operation as soon as it is queued.
    const id = newId();
    this.#starting.add(id);
    try {
      await this.vault.put(id, credentials);
      return await queue.enqueue(project, "image_import", meta, undefined, id);
    } catch (err) {
      await this.vault.delete(id);
      throw err;
    } finally {
      this.#starting.delete(id);
    }
  }

  async run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome> {
    try {
      return await this.#run(op, ctx);
    } finally {
      await this.vault.delete(op.id);
      // Also those of imports cancelled while queued (they never reach run()); best effort.
      await this.sweepCredentials().catch(() => 0);
    }
  }

  async #run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome> {
    const meta = op.metadata as ImportMetadata;
    let credentials: Credentials | undefined;
    if (meta.registry.credentials) {
      const kept = await this.vault.take(op.id);
      if (kept === undefined || kept === "unreadable") return { status: "FAILED", error: CREDENTIALS_LOST };
      credentials = kept;
    }
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
        // Extension: the compressed bytes to fetch, so a client can show progress in bytes
        // (each `layer` event carries that layer's `size`).
        total_bytes: resolved.manifest.layers.reduce((n, l) => n + l.size, 0),
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
