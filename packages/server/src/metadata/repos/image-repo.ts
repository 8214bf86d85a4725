import { sql } from "kysely";
import type { Executor, ImagesTable } from "../schema.js";
import type { PageQuery } from "./page.js";

/** A statement's condition: the image is not a tombstone (deleted or expired). */
const LIVE = "images.deleted_at";
/** When the parent of the selected `images` row was deleted (null: live or no parent). */
const parentDeletedAt = sql<
  number | null
>`(SELECT p.deleted_at FROM images AS p WHERE p.id = images.parent_id)`;
/** Non-terminal operations hold their input image and the files their `files` map names. */
const ACTIVE = sql.raw("('PENDING', 'ASSIGNED', 'EXECUTING')");

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
  /** Set on reads of live images whose parent is deleted (lineage keeps the id; clients get told). */
  parentDeleted?: boolean;
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
    // A child created is a use of its parent (retention clock), in the same transaction.
    if (img.parentId !== null) await this.touch([img.parentId], img.createdAt);
  }

  /** A live image visible to the project: its own, or one of the public project's. */
  async get(id: string, projectIds: readonly string[]): Promise<ImageRecord | undefined> {
    const r = await this.db
      .selectFrom("images")
      .selectAll()
      .select(parentDeletedAt.as("parent_deleted_at"))
      .where("id", "=", id)
      .where("project_id", "in", [...projectIds])
      .where(LIVE, "is", null)
      .executeTakeFirst();
    return r && toImage(r);
  }

  /** True if the image is a tombstone the project could see while it lived (its 404 says so). */
  async isDeleted(id: string, projectIds: readonly string[]): Promise<boolean> {
    const r = await this.db
      .selectFrom("images")
      .select("id")
      .where("id", "=", id)
      .where("project_id", "in", [...projectIds])
      .where(LIVE, "is not", null)
      .executeTakeFirst();
    return r !== undefined;
  }

  /** The ids among `ids` that are tombstones. */
  async deletedAmong(ids: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.db
        .selectFrom("images")
        .select("id")
        .where("id", "in", unique.slice(i, i + 500))
        .where(LIVE, "is not", null)
        .execute();
      for (const r of rows) out.add(r.id);
    }
    return out;
  }

  /**
   * Any image by id, tombstones included: for what already holds it (a queued run's input, a
   * commit's parent, a flatten), never for a lookup on behalf of a request.
   */
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
      .where(LIVE, "is", null)
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

  /** The live image the project's tag points at (a tag never outlives its image; belt and braces). */
  async imageIdByTag(projectId: string, tag: string): Promise<string | undefined> {
    const r = await this.db
      .selectFrom("tags")
      .innerJoin("images", "images.id", "tags.image_id")
      .select("tags.image_id")
      .where("tags.project_id", "=", projectId)
      .where("tags.tag", "=", tag)
      .where(LIVE, "is", null)
      .executeTakeFirst();
    return r?.image_id;
  }

  /** Every tag on the image, in any project (a project may tag a public image). */
  async tagsOn(imageId: string): Promise<{ projectId: string; tag: string }[]> {
    const rows = await this.db
      .selectFrom("tags")
      .select(["project_id", "tag"])
      .where("image_id", "=", imageId)
      .orderBy("project_id")
      .orderBy("tag")
      .execute();
    return rows.map((r) => ({ projectId: r.project_id, tag: r.tag }));
  }

  async removeAllTags(imageId: string): Promise<number> {
    const r = await this.db.deleteFrom("tags").where("image_id", "=", imageId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Tombstones a live image; false if it was already one (or does not exist). */
  async markDeleted(id: string, now = Date.now()): Promise<boolean> {
    const r = await this.db
      .updateTable("images")
      .set({ deleted_at: now })
      .where("id", "=", id)
      .where("deleted_at", "is", null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * Records a use of the images (retention clock). At most one write per image per
   * `minIntervalMs`: the condition leaves rows touched recently alone, so a hot image costs
   * one statement that changes nothing.
   */
  async touch(ids: readonly string[], now = Date.now(), minIntervalMs = TOUCH_INTERVAL_MS): Promise<number> {
    if (ids.length === 0) return 0;
    const r = await this.db
      .updateTable("images")
      .set({ last_used_at: now })
      .where("id", "in", [...ids])
      .where("deleted_at", "is", null)
      .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", now - minIntervalMs)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /**
   * Retention: tombstones the project's live images last used (or created) before `cutoff`,
   * except those tagged in any project, named by an unexpired lease, or the input of an
   * operation that is not terminal. One statement, so a tag, lease or operation committed
   * before it always protects.
   */
  async expireUnused(projectId: string, cutoff: number, now = Date.now()): Promise<string[]> {
    const rows = await this.db
      .updateTable("images")
      .set({ deleted_at: now })
      .where("project_id", "=", projectId)
      .where("deleted_at", "is", null)
      .where(sql<boolean>`coalesce(last_used_at, created_at) < ${cutoff}`)
      .where(sql<boolean>`NOT EXISTS (SELECT 1 FROM tags WHERE tags.image_id = images.id)`)
      .where(
        sql<boolean>`NOT EXISTS (SELECT 1 FROM operations AS o WHERE o.image_id = images.id AND o.status IN ${ACTIVE})`,
      )
      .where(
        sql<boolean>`NOT EXISTS (SELECT 1 FROM leases AS l, json_each(l.image_ids) AS j WHERE l.expires_at > ${now} AND j.value = images.id)`,
      )
      .returning("id")
      .execute();
    return rows.map((r) => r.id);
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
        .select([
          "tags.tag as tag",
          "tags.project_id as tag_project",
          parentDeletedAt.as("parent_deleted_at"),
        ])
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
      q = q.where(LIVE, "is", null);
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
      .select(parentDeletedAt.as("parent_deleted_at"))
      .where("images.project_id", "=", projectId)
      .where(LIVE, "is", null);
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

/** How often one image's last use is written at most. */
export const TOUCH_INTERVAL_MS = 60_000;

function toImage(r: ImagesTable & { parent_deleted_at?: number | null }): ImageRecord {
  return {
    ...(r.parent_deleted_at != null ? { parentDeleted: true } : {}),
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
