import type { ProjectLimits } from "../config/config.js";
import { effectiveLimits } from "../config/limits.js";
import type { Repos } from "../metadata/metadata-store.js";

/**
 * Retention (per project, `images_ttl_seconds` / `files_ttl_seconds`, 0: never). The garbage
 * collector calls both from its `beforeMark()` hook, so what expires here is collected in the
 * same pass; neither removes anything from disk.
 *
 * An image expires (becomes a tombstone, like a DELETE) when nothing used it for the TTL: no run
 * from it (queued or started), no inspect of it, no child created from it; its clock is its
 * last use, or its creation. Never expires: an image tagged in any project, one named by an
 * unexpired lease, the input of an operation that is not terminal. An expired image's children
 * keep working (their own mount chains hold their layers).
 *
 * A file row is deleted when no run named it and it was not uploaded again for the TTL, unless
 * the `files` map of an operation that is not terminal names it; its blob is the collector's.
 */
export class Retention {
  constructor(
    private readonly store: Pick<Repos, "projects" | "images" | "files">,
    private readonly defaults: ProjectLimits,
  ) {}

  /** Tombstones the images past their project's TTL at `now`; returns how many. */
  async expireImages(now = Date.now()): Promise<number> {
    let n = 0;
    for (const p of await this.store.projects.list()) {
      const ttl = effectiveLimits(this.defaults, p).images_ttl_seconds;
      if (ttl > 0) n += (await this.store.images.expireUnused(p.id, now - ttl * 1000, now)).length;
    }
    return n;
  }

  /** Deletes the file rows past their project's TTL at `now`; returns how many. */
  async expireFiles(now = Date.now()): Promise<number> {
    let n = 0;
    for (const p of await this.store.projects.list()) {
      const ttl = effectiveLimits(this.defaults, p).files_ttl_seconds;
      if (ttl > 0) n += (await this.store.files.expireUnused(p.id, now - ttl * 1000)).length;
    }
    return n;
  }
}
