import type { Executor, LeasesTable } from "../schema.js";

export interface LeaseRecord {
  id: string;
  holder: string;
  kind: string;
  projectId: string | null;
  imageIds: string[];
  layerIds: string[];
  createdAt: number;
  expiresAt: number;
}

/**
 * Durable leases: what in-flight work keeps alive (see `snapshots/leases.ts`). Garbage
 * collection reads the unexpired ones inside the transaction that deletes layer rows, so a
 * lease committed before that transaction always protects.
 */
export class LeaseRepo {
  constructor(private readonly db: Executor) {}

  async insert(l: LeaseRecord): Promise<void> {
    await this.db
      .insertInto("leases")
      .values({
        id: l.id,
        holder: l.holder,
        kind: l.kind,
        project_id: l.projectId,
        image_ids: JSON.stringify(l.imageIds),
        layer_ids: JSON.stringify(l.layerIds),
        created_at: l.createdAt,
        expires_at: l.expiresAt,
      })
      .execute();
  }

  /** Pushes the expiry of the given leases (one statement for all a process holds). */
  async renew(ids: readonly string[], expiresAt: number): Promise<void> {
    for (let i = 0; i < ids.length; i += 500)
      await this.db
        .updateTable("leases")
        .set({ expires_at: expiresAt })
        .where("id", "in", ids.slice(i, i + 500))
        .execute();
  }

  async release(id: string): Promise<void> {
    await this.db.deleteFrom("leases").where("id", "=", id).execute();
  }

  /** Leases still in force at `now`. */
  async live(now = Date.now()): Promise<LeaseRecord[]> {
    const rows = await this.db.selectFrom("leases").selectAll().where("expires_at", ">", now).execute();
    return rows.map(toLease);
  }

  /** Forgets leases whose holder stopped renewing them; returns how many. */
  async deleteExpired(now = Date.now()): Promise<number> {
    const r = await this.db.deleteFrom("leases").where("expires_at", "<=", now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

function toLease(r: LeasesTable): LeaseRecord {
  return {
    id: r.id,
    holder: r.holder,
    kind: r.kind,
    projectId: r.project_id,
    imageIds: JSON.parse(r.image_ids) as string[],
    layerIds: JSON.parse(r.layer_ids) as string[],
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}
