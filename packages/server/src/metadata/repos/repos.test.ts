import type { KyselyPlugin } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { SqliteMetadataStore } from "../sqlite/sqlite-metadata-store.js";
import { type ImageRecord, ImageRepo } from "./image-repo.js";
import type { Project } from "./project-repo.js";
import { PERMISSIONS, type Permissions } from "./token-repo.js";

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    return isAppError(err) ? err.kind : `other: ${String(err)}`;
  }
}

const hex = (c: string) => c.repeat(64);
const allPerms = Object.fromEntries(PERMISSIONS.map((p) => [p, true])) as Permissions;

describe("metadata repositories", () => {
  let s: SqliteMetadataStore;
  let a: Project;
  let b: Project;

  beforeEach(async () => {
    s = SqliteMetadataStore.open(":memory:");
    a = await s.projects.create("a");
    b = await s.projects.create("b");
  });
  afterEach(async () => {
    await s.close();
  });

  describe("projects", () => {
    it("create, find by name and id, resolve, list in creation order", async () => {
      expect(a).toMatchObject({ name: "a", limits: {} });
      expect(await s.projects.findByName("a")).toEqual(a);
      expect(await s.projects.findById(a.id)).toEqual(a);
      expect(await s.projects.resolve("b")).toEqual(b);
      expect(await s.projects.resolve(b.id)).toEqual(b);
      expect((await s.projects.list()).map((p) => p.name)).toEqual(["a", "b"]);
    });

    it("duplicate names conflict; unknown names are not_found", async () => {
      expect(await kindOf(s.projects.create("a"))).toBe("conflict");
      expect(await kindOf(s.projects.resolve("nope"))).toBe("not_found");
      expect(await kindOf(s.projects.resolve(newId()))).toBe("not_found");
    });

    it("limits round-trip", async () => {
      await s.projects.setLimits(a.id, { instance_max_concurrency: 3 });
      expect((await s.projects.findById(a.id))?.limits).toEqual({ instance_max_concurrency: 3 });
    });
  });

  describe("files", () => {
    it("upsert dedupes by (project, sha256): same id, created_at kept, updated_at touched", async () => {
      const first = await s.files.upsert(a.id, hex("a"), 10, 1000);
      expect(first.created).toBe(true);
      expect(first.file).toMatchObject({
        projectId: a.id,
        sha256: hex("a"),
        size: 10,
        createdAt: 1000,
        updatedAt: 1000,
      });
      const again = await s.files.upsert(a.id, hex("a"), 10, 2000);
      expect(again.created).toBe(false);
      expect(again.file).toEqual({ ...first.file, updatedAt: 2000 });
      expect(await s.files.findBySha(a.id, hex("a"))).toEqual({ ...first.file, updatedAt: 2000 });
    });

    it("concurrent upserts of the same digest yield one record", async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => s.files.upsert(a.id, hex("c"), 5)));
      expect(new Set(results.map((r) => r.file.id)).size).toBe(1);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(await s.files.list(a.id, { limit: 100, offset: 0 })).toHaveLength(1);
    });

    it("records are per project: same bytes in two projects are two records, invisible to each other", async () => {
      const fa = (await s.files.upsert(a.id, hex("d"), 1)).file;
      expect(await s.files.findBySha(b.id, hex("d"))).toBeUndefined();
      expect(await s.files.findById(b.id, fa.id)).toBeUndefined();
      expect(await s.files.list(b.id, { limit: 100, offset: 0 })).toEqual([]);
      const fb = (await s.files.upsert(b.id, hex("d"), 1)).file;
      expect(fb.id).not.toBe(fa.id);
      expect(await s.files.findById(a.id, fa.id)).toEqual(fa);
    });

    it("list: newest first, ties by id descending, limit/offset, inclusive since/until", async () => {
      const made = [];
      for (let i = 0; i < 5; i++)
        made.push((await s.files.upsert(a.id, hex(String(i)), i, 1000 + i * 10)).file);
      const tie = (await s.files.upsert(a.id, hex("e"), 99, 1040)).file;
      const list = await s.files.list(a.id, { limit: 100, offset: 0 });
      const top = [made[4], tie].sort((x, y) => (x!.id < y!.id ? 1 : -1));
      expect(list.map((f) => f.id)).toEqual([
        ...top.map((f) => f!.id),
        made[3]!.id,
        made[2]!.id,
        made[1]!.id,
        made[0]!.id,
      ]);
      expect((await s.files.list(a.id, { limit: 2, offset: 1 })).map((f) => f.id)).toEqual([
        list[1]!.id,
        list[2]!.id,
      ]);
      expect(await s.files.list(a.id, { limit: 10, offset: 100 })).toEqual([]);
      const window = await s.files.list(a.id, { limit: 100, offset: 0, since: 1010, until: 1030 });
      expect(window.map((f) => f.createdAt)).toEqual([1030, 1020, 1010]);
    });
  });

  describe("images", () => {
    const image = (projectId: string, createdAt: number): ImageRecord => ({
      id: newId(),
      projectId,
      parentId: null,
      layerId: null,
      mountChain: [],
      depth: 0,
      env: null,
      operationId: null,
      size: 0,
      source: null,
      createdAt,
    });

    it("list without a tag filter: one query, each row with the tag tagOf shows, in order and pages", async () => {
      let queries = 0;
      const counting: KyselyPlugin = {
        transformQuery: (args) => {
          queries++;
          return args.node;
        },
        transformResult: async (args) => args.result,
      };
      const repo = new ImageRepo(s.db.withPlugin(counting));
      const mine: ImageRecord[] = [];
      for (let i = 0; i < 60; i++) {
        const img = image(a.id, 1000 + Math.floor(i / 3)); // ties in created_at
        await s.images.insert(img);
        mine.push(img);
        await s.images.insert(image(b.id, 1000 + i));
      }
      // none, one, several (latest wins, ties broken the same way), and another project's tags
      for (let i = 0; i < mine.length; i++) {
        const id = mine[i]!.id;
        for (let k = 0; k < i % 4; k++) await s.images.setTag(a.id, `t${i}-${k}`, id, 5000 + (i % 3) * k);
        if (i % 5 === 0) await s.images.setTag(b.id, `other${i}`, id, 9000);
      }
      const expected = await Promise.all(
        [...mine]
          .sort((x, y) => y.createdAt - x.createdAt || (x.id < y.id ? 1 : -1))
          .map(async (img) => ({ ...img, tag: await s.images.tagOf(a.id, img.id) })),
      );
      expect(expected.filter((e) => e.tag !== null).length).toBeGreaterThan(20);

      queries = 0;
      expect(await repo.list(a.id, b.id, { limit: 100, offset: 0 })).toEqual(expected);
      expect(queries).toBe(1);
      for (const [offset, limit] of [
        [0, 7],
        [7, 7],
        [55, 10],
        [60, 5],
      ] as const) {
        expect(await repo.list(a.id, b.id, { limit, offset })).toEqual(
          expected.slice(offset, offset + limit),
        );
      }
      const window = await repo.list(a.id, b.id, { limit: 100, offset: 0, since: 1005, until: 1010 });
      expect(window).toEqual(expected.filter((e) => e.createdAt >= 1005 && e.createdAt <= 1010));
      expect(await repo.list(a.id, b.id, { limit: 10, offset: 0, uuid: mine[9]!.id })).toEqual(
        expected.filter((e) => e.id === mine[9]!.id),
      );
    });
  });

  describe("tokens", () => {
    const insert = (projectId: string, hash: string, expiresAt: number | null = null) =>
      s.tokens.insert({
        id: newId(),
        projectId,
        hash,
        admin: false,
        permissions: allPerms,
        description: "t",
        expiresAt,
      });

    it("insert, find by hash, list per project, count", async () => {
      const t = await insert(a.id, "h1", 123);
      await insert(b.id, "h2");
      // insert() also hands back the hash it was given; the stored record is everything else.
      const { hash: _hash, ...stored } = t as typeof t & { hash?: string };
      expect(await s.tokens.findByHash("h1")).toEqual(stored);
      expect(await s.tokens.findByHash("nope")).toBeUndefined();
      expect((await s.tokens.list(a.id)).map((x) => x.id)).toEqual([t.id]);
      expect(await s.tokens.list()).toHaveLength(2);
      expect(await s.tokens.count()).toBe(2);
      expect(t).toMatchObject({ expiresAt: 123, revokedAt: null, admin: false, permissions: allPerms });
    });

    it("hashes are unique", async () => {
      await insert(a.id, "same");
      await expect(insert(b.id, "same")).rejects.toThrow(/UNIQUE/);
    });

    it("revoke marks the token once; again is a no-op; unknown is not_found", async () => {
      const t = await insert(a.id, "h");
      await s.tokens.revoke(t.id, 5000);
      expect((await s.tokens.findByHash("h"))?.revokedAt).toBe(5000);
      await s.tokens.revoke(t.id, 9000);
      expect((await s.tokens.findByHash("h"))?.revokedAt).toBe(5000);
      expect(await kindOf(s.tokens.revoke(newId()))).toBe("not_found");
    });

    it("a token must belong to an existing project", async () => {
      await expect(insert(newId(), "orphan")).rejects.toThrow(/FOREIGN KEY/);
    });
  });
});
