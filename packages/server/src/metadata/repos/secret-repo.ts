import type { Executor } from "../schema.js";

/** What may be shown of a secret: never its value. */
/** Where a secret may go: header mode to these hosts, env mode when allowed. */
export interface SecretPolicy {
  hosts: string[];
  allowEnv: boolean;
}

export interface SecretInfo extends SecretPolicy {
  name: string;
  size: number;
  createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
}

export interface SealedSecret extends SecretPolicy {
  name: string;
  sealed: Buffer;
  keyId: string;
}

/** Project secrets as sealed rows (the cipher lives in `secrets/`; nothing here sees a value). */
export class SecretRepo {
  constructor(private readonly db: Executor) {}

  /** Creates or replaces; true when it was created. */
  async put(
    projectId: string,
    name: string,
    s: { sealed: Buffer; keyId: string; size: number } & SecretPolicy,
    now = Date.now(),
  ) {
    const existing = await this.db
      .selectFrom("secrets")
      .select("name")
      .where("project_id", "=", projectId)
      .where("name", "=", name)
      .executeTakeFirst();
    await this.db
      .insertInto("secrets")
      .values({
        project_id: projectId,
        name,
        sealed: s.sealed,
        key_id: s.keyId,
        size: s.size,
        hosts: JSON.stringify(s.hosts),
        allow_env: s.allowEnv ? 1 : 0,
        created_at: now,
        updated_at: now,
        last_used_at: null,
      })
      .onConflict((oc) =>
        oc.columns(["project_id", "name"]).doUpdateSet({
          sealed: s.sealed,
          key_id: s.keyId,
          size: s.size,
          hosts: JSON.stringify(s.hosts),
          allow_env: s.allowEnv ? 1 : 0,
          updated_at: now,
        }),
      )
      .execute();
    return existing === undefined;
  }

  async list(projectId: string): Promise<SecretInfo[]> {
    const rows = await this.db
      .selectFrom("secrets")
      .select(["name", "size", "hosts", "allow_env", "created_at", "updated_at", "last_used_at"])
      .where("project_id", "=", projectId)
      .orderBy("name")
      .execute();
    return rows.map((r) => ({
      name: r.name,
      size: r.size,
      ...policyOf(r),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      lastUsedAt: r.last_used_at,
    }));
  }

  /** The policies of those among `names` that exist. */
  async policies(projectId: string, names: readonly string[]): Promise<Map<string, SecretPolicy>> {
    if (names.length === 0) return new Map();
    const rows = await this.db
      .selectFrom("secrets")
      .select(["name", "hosts", "allow_env"])
      .where("project_id", "=", projectId)
      .where("name", "in", [...names])
      .execute();
    return new Map(rows.map((r) => [r.name, policyOf(r)]));
  }

  async sealed(projectId: string, names: readonly string[]): Promise<SealedSecret[]> {
    if (names.length === 0) return [];
    const rows = await this.db
      .selectFrom("secrets")
      .select(["name", "sealed", "key_id", "hosts", "allow_env"])
      .where("project_id", "=", projectId)
      .where("name", "in", [...names])
      .execute();
    return rows.map((r) => ({
      name: r.name,
      sealed: Buffer.from(r.sealed),
      keyId: r.key_id,
      ...policyOf(r),
    }));
  }

  async touch(projectId: string, names: readonly string[], now = Date.now()): Promise<void> {
    if (names.length === 0) return;
    await this.db
      .updateTable("secrets")
      .set({ last_used_at: now })
      .where("project_id", "=", projectId)
      .where("name", "in", [...names])
      .execute();
  }

  /** True when it existed. */
  async delete(projectId: string, name: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom("secrets")
      .where("project_id", "=", projectId)
      .where("name", "=", name)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

function policyOf(r: { hosts: string; allow_env: number }): SecretPolicy {
  const hosts = JSON.parse(r.hosts) as unknown;
  return {
    hosts: Array.isArray(hosts) ? hosts.filter((h): h is string => typeof h === "string") : [],
    allowEnv: r.allow_env !== 0,
  };
}
