import { sql } from "kysely";
import type { Executor } from "../schema.js";

/** One live image's project and the layers it mounts (a `mount_chain` row, still JSON text). */
export interface LiveChain {
  projectId: string;
  mountChain: string;
}

/** Per project: its upload rows, split by whether another project holds the same blob. */
export interface ProjectFileUse {
  projectId: string;
  files: number;
  exclusiveBytes: number;
  sharedBytes: number;
}

/**
 * The queries of storage usage (`snapshots/usage.ts`). Only live images count
 * (`deleted_at IS NULL`): a tombstone's layers are either needed by a live descendant (and so
 * counted through its chain) or garbage the GC will take.
 */
export class UsageRepo {
  constructor(private readonly db: Executor) {}

  /**
   * One page of live images' projects and mount chains, in rowid order after `after`: short
   * queries, so a pass over 100,000 images never holds the connection (or the event loop) for
   * long. Not a snapshot: an image added or rewritten meanwhile may be seen or not.
   */
  async liveChainPage(after: number, limit: number): Promise<Array<LiveChain & { rowid: number }>> {
    return this.liveChainPageQuery(after, limit).execute();
  }

  /** The query of `liveChainPage`, unexecuted (its plan is checked by a test). */
  liveChainPageQuery(after: number, limit: number) {
    // `+deleted_at`: not through the (deleted_at, last_used_at) index, which made every page sort
    // all live images again (O(n²) over a pass); a rowid range per page keeps it linear.
    return this.db
      .selectFrom("images")
      .select([sql<number>`rowid`.as("rowid"), "project_id as projectId", "mount_chain as mountChain"])
      .where(sql<number>`rowid`, ">", after)
      .where(sql<number | null>`+deleted_at`, "is", null)
      .orderBy(sql`rowid`)
      .limit(limit);
  }

  /** One page of layer rows (id, size) in rowid order after `after`. */
  async layerPage(after: number, limit: number): Promise<Array<{ rowid: number; id: string; size: number }>> {
    return this.db
      .selectFrom("layers")
      .select([sql<number>`rowid`.as("rowid"), "id", "size"])
      .where(sql<number>`rowid`, ">", after)
      .orderBy(sql`rowid`)
      .limit(limit)
      .execute();
  }

  /** Live images per project. */
  async liveImageCounts(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom("images")
      .select(["project_id", sql<number>`count(*)`.as("n")])
      .where("deleted_at", "is", null)
      .groupBy("project_id")
      .execute();
    return new Map(rows.map((r) => [r.project_id, Number(r.n)]));
  }

  /**
   * Uploads per project. A blob is stored once per sha256 (the content store dedups), so a row
   * whose sha256 another project also has is shared: deleting it alone frees nothing.
   */
  async fileUse(): Promise<ProjectFileUse[]> {
    const rows = await sql<{ project_id: string; files: number; exclusive: number; shared: number }>`
      SELECT f.project_id AS project_id, count(*) AS files,
        coalesce(sum(CASE WHEN c.n = 1 THEN f.size ELSE 0 END), 0) AS exclusive,
        coalesce(sum(CASE WHEN c.n > 1 THEN f.size ELSE 0 END), 0) AS shared
      FROM files f JOIN (SELECT sha256, count(*) AS n FROM files GROUP BY sha256) c ON c.sha256 = f.sha256
      GROUP BY f.project_id`.execute(this.db);
    return rows.rows.map((r) => ({
      projectId: r.project_id,
      files: Number(r.files),
      exclusiveBytes: Number(r.exclusive),
      sharedBytes: Number(r.shared),
    }));
  }

  /** Distinct blobs the file rows name and their bytes (what the content store holds for them). */
  async blobTotals(): Promise<{ blobs: number; bytes: number }> {
    const r = await sql<{ blobs: number; bytes: number | null }>`
      SELECT count(*) AS blobs, sum(size) AS bytes FROM (SELECT sha256, max(size) AS size FROM files GROUP BY sha256)`.execute(
      this.db,
    );
    const row = r.rows[0];
    return { blobs: Number(row?.blobs ?? 0), bytes: Number(row?.bytes ?? 0) };
  }

  /**
   * What a new image adds to its project's usage, for the cached figure between full passes:
   * a run's own layer, or an import's whole size (its reused layers counted again: an
   * overestimate the next full pass corrects, never an underestimate that lets a project past
   * its quota).
   */
  async addedBy(
    imageId: string,
    operationId: string,
  ): Promise<{ projectId: string; bytes: number } | undefined> {
    const r = await this.db
      .selectFrom("images")
      .leftJoin("layers", "layers.id", "images.layer_id")
      .select(["images.project_id", "images.size", "images.parent_id", "layers.size as layerSize"])
      .where("images.id", "=", imageId)
      // A run that changed nothing reports its input image: that one adds nothing.
      .where("images.operation_id", "=", operationId)
      .where("images.deleted_at", "is", null)
      .executeTakeFirst();
    if (!r) return undefined;
    return { projectId: r.project_id, bytes: r.parent_id === null ? r.size : (r.layerSize ?? 0) };
  }
}
