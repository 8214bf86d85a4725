import { sql } from "kysely";
import { newId } from "../../core/ids.js";
import type { Executor, FilesTable } from "../schema.js";
import type { PageQuery } from "./page.js";

export interface FileRecord {
  id: string;
  projectId: string;
  sha256: string;
  size: number;
  createdAt: number;
  updatedAt: number;
}

export class FileRepo {
  constructor(private readonly db: Executor) {}

  /** Records the blob for the project, or touches and returns the existing record (dedupe). */
  async upsert(
    projectId: string,
    sha256: string,
    size: number,
    now = Date.now(),
  ): Promise<{ file: FileRecord; created: boolean }> {
    const existing = await this.findBySha(projectId, sha256);
    if (existing) {
      await this.db.updateTable("files").set({ updated_at: now }).where("id", "=", existing.id).execute();
      return { file: { ...existing, updatedAt: now }, created: false };
    }
    const file: FileRecord = { id: newId(), projectId, sha256, size, createdAt: now, updatedAt: now };
    await this.db
      .insertInto("files")
      .values({ id: file.id, project_id: projectId, sha256, size, created_at: now, updated_at: now })
      .onConflict((oc) => oc.columns(["project_id", "sha256"]).doNothing())
      .execute();
    const stored = await this.findBySha(projectId, sha256);
    return { file: stored ?? file, created: stored?.id === file.id };
  }

  async findBySha(projectId: string, sha256: string): Promise<FileRecord | undefined> {
    const r = await this.db
      .selectFrom("files")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("sha256", "=", sha256)
      .executeTakeFirst();
    return r && toFile(r);
  }

  async findById(projectId: string, id: string): Promise<FileRecord | undefined> {
    const r = await this.db
      .selectFrom("files")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    return r && toFile(r);
  }

  /** Records that a run names the files (retention clock), at most one write per file per minute. */
  async touch(
    projectId: string,
    ids: readonly string[],
    now = Date.now(),
    minIntervalMs = 60_000,
  ): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .updateTable("files")
      .set({ last_used_at: now })
      .where("project_id", "=", projectId)
      .where("id", "in", [...ids])
      .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", now - minIntervalMs)]))
      .execute();
  }

  /**
   * Retention: forgets the project's files neither uploaded again nor named by a run since
   * `cutoff`, except those a non-terminal operation's `files` map names (their blobs are the
   * garbage collector's to remove). One statement, so an operation queued before it protects.
   */
  async expireUnused(projectId: string, cutoff: number): Promise<string[]> {
    const rows = await this.db
      .deleteFrom("files")
      .where("project_id", "=", projectId)
      .where(sql<boolean>`max(coalesce(last_used_at, 0), updated_at) < ${cutoff}`)
      .where(
        sql<boolean>`NOT EXISTS (SELECT 1 FROM operations AS o, json_each(o.metadata, '$.files') AS f
          WHERE o.project_id = files.project_id AND o.status IN ('PENDING', 'ASSIGNED', 'EXECUTING')
          AND json_extract(f.value, '$.uuid') = files.id)`,
      )
      .returning("id")
      .execute();
    return rows.map((r) => r.id);
  }

  async list(projectId: string, page: PageQuery): Promise<FileRecord[]> {
    let q = this.db.selectFrom("files").selectAll().where("project_id", "=", projectId);
    if (page.since !== undefined) q = q.where("created_at", ">=", page.since);
    if (page.until !== undefined) q = q.where("created_at", "<=", page.until);
    const rows = await q
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(page.limit)
      .offset(page.offset)
      .execute();
    return rows.map(toFile);
  }
}

function toFile(r: FilesTable): FileRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    sha256: r.sha256,
    size: r.size,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
