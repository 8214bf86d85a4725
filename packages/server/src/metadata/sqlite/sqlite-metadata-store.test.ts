import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { SQLITE_MIGRATIONS } from "../migrations/sqlite/index.js";
import { SqliteMetadataStore } from "./sqlite-metadata-store.js";

describe("SqliteMetadataStore", () => {
  let dir: string;
  let path: string;
  const open: SqliteMetadataStore[] = [];
  const openStore = () => {
    const s = SqliteMetadataStore.open(path);
    open.push(s);
    return s;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-meta-"));
    path = join(dir, "nested", "metadata.db");
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the file (and its directory) with WAL journaling and foreign keys on", async () => {
    const s = openStore();
    const jm = await sql<{ journal_mode: string }>`PRAGMA journal_mode`.execute(s.db);
    expect(jm.rows[0]?.journal_mode).toBe("wal");
    const fk = await sql<{ foreign_keys: number }>`PRAGMA foreign_keys`.execute(s.db);
    expect(fk.rows[0]?.foreign_keys).toBe(1);
    const bt = await sql<{ timeout: number }>`PRAGMA busy_timeout`.execute(s.db);
    expect(bt.rows[0]?.timeout).toBeGreaterThan(0);
  });

  it("applies every migration once; reopening is idempotent and keeps data", async () => {
    const s1 = openStore();
    const p = await s1.projects.create("alpha");
    await s1.close();
    open.pop();
    for (let i = 0; i < 3; i++) {
      const s = openStore();
      const rows = await sql<{
        version: number;
      }>`SELECT version FROM schema_migrations ORDER BY version`.execute(s.db);
      expect(rows.rows.map((r) => r.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
      expect(await s.projects.findByName("alpha")).toEqual(p);
      await s.close();
      open.pop();
    }
  });

  it("migration versions are unique and ascending", () => {
    const v = SQLITE_MIGRATIONS.map((m) => m.version);
    expect(v).toEqual([...v].sort((a, b) => a - b));
    expect(new Set(v).size).toBe(v.length);
    expect(v[0]).toBe(1);
  });

  it("refuses a database written by a newer server", async () => {
    const s = openStore();
    await s.close();
    open.pop();
    const raw = new BetterSqlite3(path);
    raw
      .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
      .run(9999, "future", Date.now());
    raw.close();
    try {
      openStore();
      expect.unreachable("opened a newer database");
    } catch (err) {
      expect(isAppError(err) && err.kind).toBe("internal");
      expect((err as Error).message).toMatch(/newer than this server/);
    }
  });

  it("enforces foreign keys", async () => {
    const s = openStore();
    const insert = s.db
      .insertInto("files")
      .values({
        id: newId(),
        project_id: newId(),
        sha256: "a".repeat(64),
        size: 1,
        created_at: 1,
        updated_at: 1,
      })
      .execute();
    await expect(insert).rejects.toThrow(/FOREIGN KEY/);
  });

  it("transaction commits everything or nothing", async () => {
    const s = openStore();
    await expect(
      s.transaction(async (tx) => {
        await tx.projects.create("inside");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await s.projects.findByName("inside")).toBeUndefined();
    const made = await s.transaction(async (tx) => tx.projects.create("committed"));
    expect(await s.projects.findById(made.id)).toEqual(made);
  });

  it("a second connection (admin CLI beside the server) sees committed writes", async () => {
    const server = openStore();
    const admin = openStore();
    const p = await admin.projects.create("from-cli");
    expect(await server.projects.findByName("from-cli")).toEqual(p);
  });

  it("close is idempotent", async () => {
    const s = SqliteMetadataStore.open(path);
    await s.close();
    await s.close();
  });

  it("works in memory", async () => {
    const s = SqliteMetadataStore.open(":memory:");
    try {
      expect((await s.projects.create("mem")).name).toBe("mem");
    } finally {
      await s.close();
    }
  });
});
