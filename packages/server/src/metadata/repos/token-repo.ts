import { notFound } from "../../core/errors.js";
import type { Executor, TokensTable } from "../schema.js";

export const PERMISSIONS = [
  "list",
  "spawn",
  "spawn_disposable",
  "import",
  "cancel",
  "set_image_tag",
  "delete_image",
] as const;
export type Permission = (typeof PERMISSIONS)[number];
export type Permissions = Record<Permission, boolean>;

export interface TokenRecord {
  id: string;
  projectId: string;
  /** Admin tokens may select any project with the `Project` header. */
  admin: boolean;
  permissions: Permissions;
  description: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  /** Epoch ms of the last authenticated request, to the minute; null: never used. */
  lastUsedAt: number | null;
}

interface NewToken {
  id: string;
  projectId: string;
  hash: string;
  admin: boolean;
  permissions: Permissions;
  description: string;
  expiresAt: number | null;
}

export class TokenRepo {
  constructor(private readonly db: Executor) {}

  async insert(t: NewToken, now = Date.now()): Promise<TokenRecord> {
    await this.db
      .insertInto("tokens")
      .values({
        id: t.id,
        project_id: t.projectId,
        hash: t.hash,
        admin: t.admin ? 1 : 0,
        permissions: JSON.stringify(t.permissions),
        description: t.description,
        created_at: now,
        expires_at: t.expiresAt,
        revoked_at: null,
        last_used_at: null,
      })
      .execute();
    return { ...t, createdAt: now, revokedAt: null, lastUsedAt: null };
  }

  async findByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = await this.db.selectFrom("tokens").selectAll().where("hash", "=", hash).executeTakeFirst();
    return row && toToken(row);
  }

  async list(projectId?: string): Promise<TokenRecord[]> {
    let q = this.db.selectFrom("tokens").selectAll().orderBy("created_at");
    if (projectId !== undefined) q = q.where("project_id", "=", projectId);
    return (await q.execute()).map(toToken);
  }

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom("tokens")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** Records a use at `now` unless one was recorded less than `granularityMs` before. */
  async touch(id: string, now = Date.now(), granularityMs = 60_000): Promise<void> {
    await this.db
      .updateTable("tokens")
      .set({ last_used_at: now })
      .where("id", "=", id)
      .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<=", now - granularityMs)]))
      .execute();
  }

  async revoke(id: string, now = Date.now()): Promise<void> {
    const r = await this.db
      .updateTable("tokens")
      .set({ revoked_at: now })
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) {
      const exists = await this.db.selectFrom("tokens").select("id").where("id", "=", id).executeTakeFirst();
      if (!exists) throw notFound(`token ${id} not found`);
    }
  }
}

function toToken(r: TokensTable): TokenRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    admin: r.admin === 1,
    permissions: knownPermissions(JSON.parse(r.permissions) as Partial<Permissions>, r.admin === 1),
    description: r.description,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

/**
 * Every known permission, present: a token stored before a permission existed lacks its key.
 * Such a token gets the new permission only if it is an admin token (whoami lists them all).
 */
function knownPermissions(stored: Partial<Permissions>, admin: boolean): Permissions {
  return Object.fromEntries(
    PERMISSIONS.map((p) => [p, typeof stored[p] === "boolean" ? stored[p] : admin]),
  ) as Permissions;
}
