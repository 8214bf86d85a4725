import { PUBLIC_PROJECT } from "../auth/bootstrap.js";
import { failedPrecondition, invalidArgument, notFound } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageListFilter, ImageRecord, ListedImage } from "../metadata/repos/image-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import { validateTag } from "./tag-grammar.js";

/** Images and tags of a project, with the `public` project's tags visible beneath its own. */
export class ImageService {
  private publicId: string | undefined;

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
    const img = await this.store.images.get(id, await this.visibleProjects(project));
    if (!img) throw notFound("image not found");
    return img;
  }

  async byTag(project: Project, tag: string): Promise<ImageRecord> {
    if (tag === "") throw invalidArgument("tag is required");
    const own = await this.store.images.imageIdByTag(project.id, tag);
    const pub =
      own === undefined ? await this.store.images.imageIdByTag(await this.publicProjectId(), tag) : undefined;
    const id = own ?? pub;
    const img = id === undefined ? undefined : await this.store.images.getAny(id);
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
    await this.store.images.setTag(project.id, t, img.id);
    return img;
  }

  async removeTag(project: Project, imageId: string, tag?: string): Promise<ImageRecord> {
    const img = await this.get(project, imageId);
    const removed = await this.store.images.removeTag(project.id, img.id, tag);
    if (tag !== undefined && removed === 0)
      throw failedPrecondition(`image does not carry the tag ${JSON.stringify(tag.slice(0, 256))}`);
    return img;
  }
}
