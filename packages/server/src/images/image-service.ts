import { PUBLIC_PROJECT } from "../auth/bootstrap.js";
import { conflict, failedPrecondition, invalidArgument, notFound, permissionDenied } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import {
  type ImageListFilter,
  type ImageRecord,
  type ListedImage,
  TOUCH_INTERVAL_MS,
} from "../metadata/repos/image-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import { validateTag } from "./tag-grammar.js";

/** What `DELETE /v1/images/{uuid}` did. */
export interface DeletedImage {
  id: string;
  deletedAt: number;
  /** The tags `force` removed (in this project or any other that had tagged the image). */
  tagsRemoved: string[];
}

/** Images remembered as recently touched, at most (a bound on memory, not on correctness). */
const TOUCH_MEMORY = 10_000;

/**
 * Images and tags of a project, with the `public` project's tags visible beneath its own.
 * Deleted (and expired) images are tombstones: every lookup here treats them as gone.
 */
export class ImageService {
  private publicId: string | undefined;
  /** Image id → when this process last wrote its last use (spares the statement when recent). */
  private readonly touched = new Map<string, number>();

  constructor(private readonly store: MetadataStore) {}

  async publicProjectId(): Promise<string> {
    if (this.publicId === undefined)
      this.publicId = (await this.store.projects.findByName(PUBLIC_PROJECT))?.id ?? "";
    return this.publicId;
  }

  private async visibleProjects(project: Project): Promise<string[]> {
    const pub = await this.publicProjectId();
    return pub === "" || pub === project.id ? [project.id] : [project.id, pub];
  }

  /** An image UUID, or `tag:NAME` (project tag first, then the public one). */
  async resolve(project: Project, ref: string): Promise<ImageRecord> {
    if (ref.startsWith("tag:")) return this.byTag(project, ref.slice(4));
    const id = ref.toLowerCase();
    if (!isUuid(id))
      throw invalidArgument(
        `image must be an image UUID or "tag:NAME", got ${JSON.stringify(ref.slice(0, 80))}`,
      );
    return this.get(project, id);
  }

  async get(project: Project, id: string): Promise<ImageRecord> {
    if (!isUuid(id)) throw notFound("image not found");
    const visible = await this.visibleProjects(project);
    const img = await this.store.images.get(id, visible);
    if (img) return img;
    // Only the projects that could see it learn that it existed.
    if (await this.store.images.isDeleted(id, visible)) throw notFound(`image ${id} was deleted`);
    throw notFound("image not found");
  }

  async byTag(project: Project, tag: string): Promise<ImageRecord> {
    if (tag === "") throw invalidArgument("tag is required");
    const own = await this.store.images.imageIdByTag(project.id, tag);
    const pub =
      own === undefined ? await this.store.images.imageIdByTag(await this.publicProjectId(), tag) : undefined;
    const id = own ?? pub;
    const img =
      id === undefined ? undefined : await this.store.images.get(id, await this.visibleProjects(project));
    if (!img) throw notFound(`image with tag ${JSON.stringify(tag.slice(0, 256))} not found`);
    return img;
  }

  /** The tag shown for an image in this project (own tag, else the public one). */
  async tagOf(project: Project, img: ImageRecord): Promise<string | null> {
    const own = await this.store.images.tagOf(project.id, img.id);
    if (own !== null || img.projectId === project.id) return own;
    return this.store.images.tagOf(img.projectId, img.id);
  }

  async list(project: Project, f: ImageListFilter): Promise<ListedImage[]> {
    return this.store.images.list(project.id, await this.publicProjectId(), f);
  }

  /** Puts the tag on the image, moving it if another image of the project held it. */
  async setTag(project: Project, imageId: string, tag: unknown): Promise<ImageRecord> {
    const t = validateTag(tag);
    const img = await this.get(project, imageId);
    // Checked again with the write: a delete landing in between must not leave a tag on a tombstone.
    const visible = await this.visibleProjects(project);
    const tagged = await this.store.transaction(async (tx) => {
      if (!(await tx.images.get(img.id, visible))) return false;
      await tx.images.setTag(project.id, t, img.id);
      return true;
    });
    if (!tagged) throw notFound(`image ${img.id} was deleted`);
    return img;
  }

  /**
   * Deletes (tombstones) one of the project's own images. A tagged image is refused unless
   * `force`, which removes its tags too. Children keep working: their own mount chains hold the
   * layers they need, and the garbage collector keeps the tombstone while lineage needs it.
   */
  async delete(project: Project, id: string, force: boolean, now = Date.now()): Promise<DeletedImage> {
    const img = await this.get(project, id);
    if (img.projectId !== project.id)
      throw permissionDenied(`image ${img.id} is a public image; only the public project may delete it`);
    return this.store.transaction(async (tx) => {
      if (!(await tx.images.get(img.id, [project.id]))) throw notFound(`image ${img.id} was deleted`);
      const tags = await tx.images.tagsOn(img.id);
      if (tags.length > 0 && !force) {
        const names = tags.map((t) => JSON.stringify(t.tag.slice(0, 256))).slice(0, 10);
        throw conflict(
          `image ${img.id} is tagged (${names.join(", ")}${tags.length > 10 ? ", …" : ""}); ` +
            "remove its tags first or delete with force=true",
        );
      }
      if (tags.length > 0) await tx.images.removeAllTags(img.id);
      await tx.images.markDeleted(img.id, now);
      return { id: img.id, deletedAt: now, tagsRemoved: tags.map((t) => t.tag) };
    });
  }

  /** The ids among `ids` that are deleted images (operation documents flag them). */
  async deletedAmong(ids: ReadonlyArray<string | null>): Promise<Set<string>> {
    const real = ids.filter((x): x is string => x !== null);
    return real.length === 0 ? new Set() : this.store.images.deletedAmong(real);
  }

  /**
   * A use of the image (a run from it, an inspect of it): its retention clock restarts. At most
   * one cheap statement per image per minute; never fails (a lost touch only shortens a life).
   */
  async touch(imageId: string, now = Date.now()): Promise<void> {
    const last = this.touched.get(imageId);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS && last <= now) return;
    if (this.touched.size >= TOUCH_MEMORY) this.touched.clear();
    this.touched.set(imageId, now);
    await this.store.images.touch([imageId], now).catch(() => undefined);
  }

  async removeTag(project: Project, imageId: string, tag?: string): Promise<ImageRecord> {
    const img = await this.get(project, imageId);
    const removed = await this.store.images.removeTag(project.id, img.id, tag);
    if (tag !== undefined && removed === 0)
      throw failedPrecondition(`image does not carry the tag ${JSON.stringify(tag.slice(0, 256))}`);
    return img;
  }
}
