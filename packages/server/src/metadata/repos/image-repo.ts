import { sql } from "kysely";
import type { Executor, ImagesTable } from "../schema.js";
import type { PageQuery } from "./page.js";

export interface ImageRecord {
  id: string;
  projectId: string;
  parentId: string | null;
  /** The layer this image added on top of its parent (null: same filesystem as the parent). */
  layerId: string | null;
  /** Layer ids to mount, top-most first. Compaction may shorten it; lineage never changes. */
  mountChain: string[];
  depth: number;
  env: Record<string, string> | null;
  operationId: string | null;
  size: number;
  source: string | null;
  createdAt: number;
}

interface LayerRecord {
  id: string;
  kind: "import" | "run" | "flat";
  /** OCI chain id of an imported layer (its content depends on the layers below it). */
  chainId: string | null;
  size: number;
  entries: number;
  createdAt: number;
}

export interface ImageListFilter extends PageQuery {
  tagged?: boolean;
  tagPrefix?: string | undefined;
  uuid?: string | undefined;
}

/** A listed image with the tag this project shows for it (the most recently set one). */
export interface ListedImage extends ImageRecord {
  tag: string | null;
}

export class ImageRepo {
  constructor(private readonly db: Executor) {}

  async insertLayer(l: LayerRecord): Promise<void> {
    await this.db
      .insertInto("layers")
      .values({
        id: l.id,
        kind: l.kind,
        chain_id: l.chainId,
        size: l.size,
        entries: l.entries,
        created_at: l.createdAt,
      })
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  async layer(id: string): Promise<LayerRecord | undefined> {
    const r = await this.db.selectFrom("layers").selectAll().where("id", "=", id).executeTakeFirst();
    return (
      r && {
        id: r.id,
        kind: r.kind as LayerRecord["kind"],
        chainId: r.chain_id,
        size: r.size,
        entries: r.entries,
        createdAt: r.created_at,
      }
    );
  }

  async allLayerIds(): Promise<string[]> {
    return (await this.db.selectFrom("layers").select("id").execute()).map((r) => r.id);
  }

  async insert(img: ImageRecord): Promise<void> {
    await this.db
      .insertInto("images")
      .values({
        id: img.id,
        project_id: img.projectId,
        parent_id: img.parentId,
        layer_id: img.layerId,
        mount_chain: JSON.stringify(img.mountChain),
        depth: img.depth,
        env: img.env === null ? null : JSON.stringify(img.env),
        operation_id: img.operationId,
        size: img.size,
        source: img.source,
        created_at: img.createdAt,
      })
      .execute();
  }

  /** An image visible to the project: its own, or one of the public project's. */
  async get(id: string, projectIds: readonly string[]): Promise<ImageRecord | undefined> {
    const r = await this.db
      .selectFrom("images")
      .selectAll()
      .where("id", "=", id)
      .where("project_id", "in", [...projectIds])
      .executeTakeFirst();
    return r && toImage(r);
  }

  async getAny(id: string): Promise<ImageRecord | undefined> {
    const r = await this.db.selectFrom("images").selectAll().where("id", "=", id).executeTakeFirst();
    return r && toImage(r);
  }

  async setMountChain(id: string, chain: string[]): Promise<void> {
    await this.db
      .updateTable("images")
      .set({ mount_chain: JSON.stringify(chain) })
      .where("id", "=", id)
      .execute();
  }

  /**
   * After `oldChain` was materialised into `newChain`, every image whose chain ends with it (the
   * flattened image and its descendants built meanwhile) mounts the short form instead. Layer
   * ids are [a-z0-9] only, so the JSON text of a chain suffix is unambiguous.
   */
  async replaceChainSuffix(oldChain: readonly string[], newChain: readonly string[]): Promise<number> {
    const oldText = JSON.stringify(oldChain);
    const newText = JSON.stringify(newChain);
    const exact = await this.db
      .updateTable("images")
      .set({ mount_chain: newText })
      .where("mount_chain", "=", oldText)
      .executeTakeFirst();
    const oldSuffix = `,${oldText.slice(1)}`;
    const newSuffix = `,${newText.slice(1)}`;
    const r = await this.db
      .updateTable("images")
      .set({
        mount_chain: sql<string>`substr(mount_chain, 1, length(mount_chain) - ${oldSuffix.length}) || ${newSuffix}`,
      })
      .where(
        sql<boolean>`length(mount_chain) > ${oldSuffix.length} AND substr(mount_chain, -${oldSuffix.length}) = ${oldSuffix}`,
      )
      .executeTakeFirst();
    return Number(exact.numUpdatedRows) + Number(r.numUpdatedRows);
  }

  /** Images whose mount chain is longer than `depth` (compaction candidates). */
  async deepChains(minLength: number, limit = 16): Promise<ImageRecord[]> {
    const rows = await this.db
      .selectFrom("images")
      .selectAll()
      .where(sql<number>`json_array_length(mount_chain)`, ">", minLength)
      .orderBy("created_at", "desc")
      .limit(limit)
      .execute();
    return rows.map(toImage);
  }

  // Tags: unique per project; setting one moves it.
  async setTag(projectId: string, tag: string, imageId: string, now = Date.now()): Promise<void> {
    await this.db
      .insertInto("tags")
      .values({ project_id: projectId, tag, image_id: imageId, updated_at: now })
      .onConflict((oc) =>
        oc.columns(["project_id", "tag"]).doUpdateSet({ image_id: imageId, updated_at: now }),
      )
      .execute();
  }

  async removeTag(projectId: string, imageId: string, tag?: string): Promise<number> {
    let q = this.db.deleteFrom("tags").where("project_id", "=", projectId).where("image_id", "=", imageId);
    if (tag !== undefined) q = q.where("tag", "=", tag);
    const r = await q.executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async imageIdByTag(projectId: string, tag: string): Promise<string | undefined> {
    const r = await this.db
      .selectFrom("tags")
      .select("image_id")
      .where("project_id", "=", projectId)
      .where("tag", "=", tag)
      .executeTakeFirst();
    return r?.image_id;
  }

  /** The tag the project shows for an image: its most recently set one (ties: the greatest). */
  async tagOf(projectId: string, imageId: string): Promise<string | null> {
    const r = await this.db
      .selectFrom("tags")
      .select("tag")
      .where("project_id", "=", projectId)
      .where("image_id", "=", imageId)
      .orderBy("updated_at", "desc")
      .orderBy("tag", "desc")
      .limit(1)
      .executeTakeFirst();
    return r?.tag ?? null;
  }

  /**
   * Lists images of the project. With a tag filter (or `tagged`) rows come from tags, so one
   * image may appear once per tag; the exact tag match is first, then newest first.
   */
  async list(projectId: string, publicProjectId: string, f: ImageListFilter): Promise<ListedImage[]> {
    if (f.tagged || f.tagPrefix !== undefined) {
      let q = this.db
        .selectFrom("tags")
        .innerJoin("images", "images.id", "tags.image_id")
        .selectAll("images")
        .select(["tags.tag as tag", "tags.project_id as tag_project"])
        .where((eb) =>
          eb.or([
            eb("tags.project_id", "=", projectId),
            eb.and([
              eb("tags.project_id", "=", publicProjectId),
              eb.not(
                eb.exists(
                  eb
                    .selectFrom("tags as own")
                    .select("own.tag")
                    .where("own.project_id", "=", projectId)
                    .whereRef("own.tag", "=", "tags.tag"),
                ),
              ),
            ]),
          ]),
        );
      if (f.tagPrefix !== undefined && f.tagPrefix !== "") {
        q = q.where(sql<boolean>`substr(tags.tag, 1, ${f.tagPrefix.length}) = ${f.tagPrefix}`);
      }
      if (f.uuid !== undefined) q = q.where("images.id", "=", f.uuid);
      if (f.since !== undefined) q = q.where("images.created_at", ">=", f.since);
      if (f.until !== undefined) q = q.where("images.created_at", "<=", f.until);
      const exact = f.tagPrefix ?? "";
      const rows = await q
        .orderBy(sql`CASE WHEN tags.tag = ${exact} THEN 0 ELSE 1 END`)
        .orderBy("tags.updated_at", "desc")
        .orderBy("images.id", "desc")
        .limit(f.limit)
        .offset(f.offset)
        .execute();
      return rows.map((r) => ({ ...toImage(r), tag: r.tag }));
    }
    // The shown tag comes with each row (the same pick as tagOf), not from a query per row.
    let q = this.db
      .selectFrom("images")
      .selectAll("images")
      .select((eb) =>
        eb
          .selectFrom("tags")
          .select("tags.tag")
          .where("tags.project_id", "=", projectId)
          .whereRef("tags.image_id", "=", "images.id")
          .orderBy("tags.updated_at", "desc")
          .orderBy("tags.tag", "desc")
          .limit(1)
          .as("tag"),
      )
      .where("images.project_id", "=", projectId);
    if (f.uuid !== undefined) q = q.where("images.id", "=", f.uuid);
    if (f.since !== undefined) q = q.where("images.created_at", ">=", f.since);
    if (f.until !== undefined) q = q.where("images.created_at", "<=", f.until);
    const rows = await q
      .orderBy("images.created_at", "desc")
      .orderBy("images.id", "desc")
      .limit(f.limit)
      .offset(f.offset)
      .execute();
    return rows.map((r) => ({ ...toImage(r), tag: r.tag ?? null }));
  }
}

function toImage(r: ImagesTable): ImageRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    parentId: r.parent_id,
    layerId: r.layer_id,
    mountChain: JSON.parse(r.mount_chain) as string[],
    depth: r.depth,
    env: r.env === null ? null : (JSON.parse(r.env) as Record<string, string>),
    operationId: r.operation_id,
    size: r.size,
    source: r.source,
    createdAt: r.created_at,
  };
}
