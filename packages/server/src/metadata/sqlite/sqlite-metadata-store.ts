import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { internal } from "../../core/errors.js";
import type { MetadataStore, Repos } from "../metadata-store.js";
import { SQLITE_MIGRATIONS } from "../migrations/sqlite/index.js";
import { FileRepo } from "../repos/file-repo.js";
import { GcRepo } from "../repos/gc-repo.js";
import { ImageRepo } from "../repos/image-repo.js";
import { LeaseRepo } from "../repos/lease-repo.js";
import { OperationRepo } from "../repos/operation-repo.js";
import { ProjectRepo } from "../repos/project-repo.js";
import { TokenRepo } from "../repos/token-repo.js";
import { UsageRepo } from "../repos/usage-repo.js";
import type { Database } from "../schema.js";

function reposFor(db: Kysely<Database>): Repos {
  return {
    projects: new ProjectRepo(db),
    tokens: new TokenRepo(db),
    files: new FileRepo(db),
    images: new ImageRepo(db),
    operations: new OperationRepo(db),
    leases: new LeaseRepo(db),
    gc: new GcRepo(db),
    usage: new UsageRepo(db),
  };
}

export class SqliteMetadataStore implements MetadataStore {
  readonly projects: ProjectRepo;
  readonly tokens: TokenRepo;
  readonly files: FileRepo;
  readonly images: ImageRepo;
  readonly operations: OperationRepo;
  readonly leases: LeaseRepo;
  readonly gc: GcRepo;
  readonly usage: UsageRepo;

  private constructor(
    readonly db: Kysely<Database>,
    private readonly raw: BetterSqlite3.Database,
  ) {
    const r = reposFor(db);
    this.projects = r.projects;
    this.tokens = r.tokens;
    this.files = r.files;
    this.images = r.images;
    this.operations = r.operations;
    this.leases = r.leases;
    this.gc = r.gc;
    this.usage = r.usage;
  }

  /** Opens (creating if needed) the database file and brings its schema up to date. */
  static open(path: string): SqliteMetadataStore {
    if (path !== ":memory:") {
      mkdirSync(dirname(path), { recursive: true });
      // Every tenant's tokens and names: the server's alone. SQLite gives the -wal and -shm
      // files the database's mode; older data dirs have a 0644 database.
      closeSync(openSync(path, "a", 0o600));
      privateFiles(path);
    }
    const raw = new BetterSqlite3(path);
    raw.pragma("journal_mode = WAL");
    raw.pragma("synchronous = NORMAL");
    raw.pragma("busy_timeout = 5000");
    raw.pragma("foreign_keys = ON");
    migrate(raw);
    if (path !== ":memory:") privateFiles(path);
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
    return new SqliteMetadataStore(db, raw);
  }

  /**
   * Like Kysely's transaction, but a failure keeps its own error: SQLite rolls a transaction back
   * by itself on some errors (SQLITE_FULL, IOERR, NOMEM), and the ROLLBACK Kysely then sends
   * fails with "cannot rollback - no transaction is active", which used to replace the cause.
   */
  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T> {
    return this.db.connection().execute(async (conn) => {
      await sql`begin`.execute(conn);
      try {
        const result = await fn(reposFor(conn));
        await sql`commit`.execute(conn);
        return result;
      } catch (err) {
        if (this.raw.inTransaction) await sql`rollback`.execute(conn).catch(() => undefined);
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    await this.db.destroy();
    if (this.raw.open) this.raw.close();
  }
}

function migrate(raw: BetterSqlite3.Database): void {
  raw.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
  );
  const applied = new Set(
    (raw.prepare("SELECT version FROM schema_migrations").all() as Array<{ version: number }>).map(
      (r) => r.version,
    ),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...SQLITE_MIGRATIONS.map((m) => m.version));
  if (newest > known) {
    throw internal(
      `database schema version ${newest} is newer than this server (${known}); upgrade the server`,
    );
  }
  for (const m of SQLITE_MIGRATIONS) {
    if (applied.has(m.version)) continue;
    raw
      .transaction(() => {
        raw.exec(m.sql);
        raw
          .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
          .run(m.version, m.name, Date.now());
      })
      .immediate();
  }
}

function privateFiles(db: string): void {
  for (const f of [db, `${db}-wal`, `${db}-shm`]) {
    try {
      chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}
