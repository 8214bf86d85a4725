import type { Principal } from "../auth/principal.js";
import { requirePermission } from "../auth/principal.js";
import type { Config } from "../config/config.js";
import { effectiveLimits } from "../config/limits.js";
import { notFound } from "../core/errors.js";
import type { ImageService } from "../images/image-service.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { OperationRecord } from "../metadata/repos/operation-repo.js";
import type { OperationQueue } from "../operations/operation-queue.js";
import { type InstanceMetadata, parseSpawnRequest } from "./spawn-request.js";

/** Validates a spawn synchronously (400/403/404 before anything exists), then queues it. */
export class InstanceService {
  constructor(
    private readonly config: Config,
    private readonly store: MetadataStore,
    private readonly images: ImageService,
    private readonly queue: OperationQueue,
    private readonly defaultNetworking: boolean,
  ) {}

  async spawn(p: Principal, body: unknown): Promise<{ op: OperationRecord; meta: InstanceMetadata }> {
    const limits = effectiveLimits(this.config.defaultLimits, p.project);
    const meta = parseSpawnRequest(body, limits, this.defaultNetworking);
    requirePermission(p, meta.disposable ? "spawn_disposable" : "spawn");
    const image = await this.images.resolve(p.project, meta.image);
    for (const f of new Set(Object.values(meta.files).map((x) => x.uuid))) {
      if (!(await this.store.files.findById(p.project.id, f))) throw notFound(`file ${f} not found`);
    }
    const op = await this.queue.enqueue(p.project, "instance", meta, image.id);
    return { op, meta };
  }
}
