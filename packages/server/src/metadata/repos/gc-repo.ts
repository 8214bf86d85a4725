import { sql } from "kysely";
import { ACTIVE_STATUSES } from "../../core/operation-status.js";
import type { Executor } from "../schema.js";

/** One image as the collector sees it: lineage, liveness and what it mounts. */
export interface GcImage {
  id: string;
  parentId: string | null;
  deleted: boolean;
  depth: number;
}

export interface GcLayer {
  id: string;
  size: number;
  createdAt: number;
}

/** What a queued or running operation holds without a lease row: its input image and files. */
export interface ActiveInput {
  imageId: string | null;
  fileIds: string[];
}

const CHUNK = 500;
const PAGE = 5000;

const yieldToEvents = () => new Promise<void>((r) => setImmediate(r));

/**
 * The collector's queries (snapshots/gc). The mark runs in one read transaction (a consistent
 * snapshot); the sweep's deletes run in write transactions that first take the write lock, so
 * what they re-read cannot change before they commit.
 */
export class GcRepo {
  constructor(private readonly db: Executor) {}

  /**
   * Takes the database's write lock at once. A transaction that reads first and writes later
   * would fail with SQLITE_BUSY (snapshot) whenever another writer committed in between.
   */
  async lockForWrite(): Promise<void> {
    await sql`DELETE FROM leases WHERE 0`.execute(this.db);
  }

  async countExpiredLeases(now: number): Promise<number> {
    const r = await this.db
      .selectFrom("leases")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("expires_at", "<=", now)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** Highest image rowid: images inserted later have a greater one (GC is the only row remover and runs one pass at a time). */
  async maxImageRowid(): Promise<number> {
    const r = await sql<{ m: number | null }>`SELECT max(rowid) AS m FROM images`.execute(this.db);
    return r.rows[0]?.m ?? 0;
  }

  /**
   * Every distinct layer id in the mount chain of a live image. Read in pages by rowid, with a
   * turn of the event loop between them: SQLite calls are synchronous, and one query over
   * 100,000 chains would stall the server for a second.
   */
  async liveChainLayers(): Promise<Set<string>> {
    const out = new Set<string>();
    for (let after = 0; ; ) {
      const r = await sql<{ rid: number; mount_chain: string }>`
        SELECT rowid AS rid, mount_chain FROM images
        WHERE deleted_at IS NULL AND rowid > ${after} ORDER BY rowid LIMIT ${PAGE}`.execute(this.db);
      for (const row of r.rows) for (const id of JSON.parse(row.mount_chain) as string[]) out.add(id);
      if (r.rows.length < PAGE) return out;
      after = (r.rows[r.rows.length - 1] as { rid: number }).rid;
      await yieldToEvents();
    }
  }

  /** Mount chains of the given images (tombstones too: a lease or an operation may hold one). */
  async chainsOf(ids: readonly string[]): Promise<string[][]> {
    const out: string[][] = [];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom("images")
        .select("mount_chain")
        .where("id", "in", ids.slice(i, i + CHUNK))
        .execute();
      for (const r of rows) out.push(JSON.parse(r.mount_chain) as string[]);
    }
    return out;
  }

  /** Images inserted after the mark's snapshot (rowid above it), with their chains. */
  async imagesAfter(rowid: number): Promise<Array<{ id: string; parentId: string | null; chain: string[] }>> {
    const rows = await sql<{ id: string; parent_id: string | null; mount_chain: string }>`
      SELECT id, parent_id, mount_chain FROM images WHERE rowid > ${rowid}`.execute(this.db);
    return rows.rows.map((r) => ({
      id: r.id,
      parentId: r.parent_id,
      chain: JSON.parse(r.mount_chain) as string[],
    }));
  }

  /** Every image's lineage and liveness, in pages like liveChainLayers. */
  async images(): Promise<GcImage[]> {
    const out: GcImage[] = [];
    for (let after = 0; ; ) {
      const r = await sql<{
        rid: number;
        id: string;
        parent_id: string | null;
        deleted_at: number | null;
        depth: number;
      }>`
        SELECT rowid AS rid, id, parent_id, deleted_at, depth FROM images
        WHERE rowid > ${after} ORDER BY rowid LIMIT ${PAGE}`.execute(this.db);
      for (const x of r.rows)
        out.push({ id: x.id, parentId: x.parent_id, deleted: x.deleted_at !== null, depth: x.depth });
      if (r.rows.length < PAGE) return out;
      after = (r.rows[r.rows.length - 1] as { rid: number }).rid;
      await yieldToEvents();
    }
  }

  /** Every layer row, in pages like liveChainLayers. */
  async layers(): Promise<GcLayer[]> {
    const out: GcLayer[] = [];
    for (let after = 0; ; ) {
      const r = await sql<{ rid: number; id: string; size: number; created_at: number }>`
        SELECT rowid AS rid, id, size, created_at FROM layers
        WHERE rowid > ${after} ORDER BY rowid LIMIT ${PAGE}`.execute(this.db);
      for (const x of r.rows) out.push({ id: x.id, size: x.size, createdAt: x.created_at });
      if (r.rows.length < PAGE) return out;
      after = (r.rows[r.rows.length - 1] as { rid: number }).rid;
      await yieldToEvents();
    }
  }

  /** Which of the given layer ids have a row. */
  async existingLayers(ids: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < ids.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom("layers")
        .select("id")
        .where("id", "in", ids.slice(i, i + CHUNK))
        .execute();
      for (const r of rows) out.add(r.id);
      await yieldToEvents();
    }
    return out;
  }

  async activeInputs(): Promise<ActiveInput[]> {
    const rows = await this.db
      .selectFrom("operations")
      .select(["image_id", "metadata"])
      .where("status", "in", [...ACTIVE_STATUSES])
      .execute();
    return rows.map((r) => ({ imageId: r.image_id, fileIds: fileIdsOf(r.metadata) }));
  }

  /** Ids of operations that are not terminal (their run dirs are in use). */
  async activeOperationIds(): Promise<Set<string>> {
    const rows = await this.db
      .selectFrom("operations")
      .select("id")
      .where("status", "in", [...ACTIVE_STATUSES])
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /** Digests (hex) some file row names. */
  async fileDigests(): Promise<Set<string>> {
    const rows = await this.db.selectFrom("files").select("sha256").distinct().execute();
    return new Set(rows.map((r) => r.sha256));
  }

  async fileDigestNamed(hex: string): Promise<boolean> {
    const r = await this.db.selectFrom("files").select("id").where("sha256", "=", hex).executeTakeFirst();
    return r !== undefined;
  }

  /**
   * Deletes layer rows. Images that recorded one of them as the layer they added (an image whose
   * chain was flattened, or a tombstone kept for lineage) keep their lineage, with no layer.
   */
  async deleteLayers(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) {
      const part = ids.slice(i, i + CHUNK);
      await this.db.updateTable("images").set({ layer_id: null }).where("layer_id", "in", part).execute();
      await this.db.deleteFrom("layers").where("id", "in", part).execute();
    }
  }

  /** Hard-deletes tombstones, deepest first (a parent row goes after its children). */
  async deleteImages(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) {
      const part = ids.slice(i, i + CHUNK);
      await this.db.deleteFrom("tags").where("image_id", "in", part).execute();
      await this.db
        .deleteFrom("images")
        .where("id", "in", part)
        .where("deleted_at", "is not", null)
        .execute();
    }
  }
}

function fileIdsOf(metadata: string): string[] {
  try {
    const m = JSON.parse(metadata) as { files?: Record<string, { uuid?: unknown }> } | null;
    return Object.values(m?.files ?? {})
      .map((f) => f?.uuid)
      .filter((u): u is string => typeof u === "string");
  } catch {
    return [];
  }
}
