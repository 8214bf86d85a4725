import type { Principal } from "../auth/principal.js";
import { requirePermission } from "../auth/principal.js";
import type { Config } from "../config/config.js";
import { effectiveLimits } from "../config/limits.js";
import { notFound } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { ImageService } from "../images/image-service.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { OperationRecord } from "../metadata/repos/operation-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { OperationQueue } from "../operations/operation-queue.js";
import type { OutputRef } from "../outputs/output-ref.js";
import type { OutputStore } from "../outputs/output-store.js";
import { INLINE_OUTPUT_MAX } from "./output-capture.js";
import { type InstanceMetadata, normalizeSpawn, type SpawnBody } from "./spawn-request.js";

/** Validates a spawn synchronously (400/403/404 before anything exists), then queues it. */
export class InstanceService {
  constructor(
    private readonly config: Config,
    private readonly store: MetadataStore,
    private readonly images: ImageService,
    private readonly queue: OperationQueue,
    private readonly defaultNetworking: boolean,
    /** A large stdin is kept here (`1.input`), not in the operation's metadata document. */
    private readonly outputs: OutputStore,
    /** Throws when the project is at its storage quota (a disposable run adds nothing: not asked). */
    private readonly assertQuota?: (project: Project) => Promise<void>,
    /** Project secrets: a run naming one the project lacks is a 404 before it is queued. */
    private readonly secrets?: {
      assertUsable(projectId: string, uses: ReadonlyArray<{ name: string; host?: string }>): Promise<void>;
    },
  ) {}

  async spawn(p: Principal, body: SpawnBody): Promise<{ op: OperationRecord; meta: InstanceMetadata }> {
    const limits = effectiveLimits(this.config.defaultLimits, p.project);
    const { meta, stdinBytes: bytes } = normalizeSpawn(
      body,
      limits,
      this.defaultNetworking,
      p.project.egress,
    );
    requirePermission(p, meta.disposable ? "spawn_disposable" : "spawn");
    if (!meta.disposable) await this.assertQuota?.(p.project);
    const image = await this.images.resolve(p.project, meta.image);
    if (meta.secrets !== undefined) {
      if (!this.secrets) throw notFound(`secret ${JSON.stringify(meta.secrets[0]?.name)} not found`);
      await this.secrets.assertUsable(
        p.project.id,
        meta.secrets.map((s) => (s.header ? { name: s.name, host: s.header.host } : { name: s.name })),
      );
    }
    const files = [...new Set(Object.values(meta.files).map((x) => x.uuid))];
    // Retention clocks first, then the checks: what is found after its touch cannot expire
    // before the operation row (which holds it from then on) exists.
    await this.images.touch(image.id);
    await this.store.files.touch(p.project.id, files);
    for (const f of files) {
      if (!(await this.store.files.findById(p.project.id, f))) throw notFound(`file ${f} not found`);
    }
    if (bytes.length <= INLINE_OUTPUT_MAX) {
      return { op: await this.queue.enqueue(p.project, "instance", meta, image.id), meta };
    }
    // Stored before the row exists; start-up reclaim removes it if the row never comes.
    const id = newId();
    const stdin: OutputRef = {
      $out: { stream: "1.input", offset: 0, length: bytes.length },
      encoding: meta.stdin.encoding,
      close: meta.stdin.close,
    };
    try {
      const file = await this.outputs.create(id, "1.input");
      try {
        await file.append(bytes);
      } finally {
        await file.seal();
      }
      return { op: await this.queue.enqueue(p.project, "instance", { ...meta, stdin }, image.id, id), meta };
    } catch (err) {
      // Nothing may stay on disk for an operation that never came to be.
      await this.outputs.remove(id).catch(() => undefined);
      throw err;
    }
  }
}
