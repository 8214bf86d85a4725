/**
 * One lookup of an operation named in a URL (issue 11 §2): every route that names one answers
 * the same 404 for a malformed id, an unknown one, another tenant's, and (subprocesses) one that
 * is not an instance. Unit level over real SQLite, then through the real server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAppError } from "../../src/core/errors.js";
import { newId } from "../../src/core/ids.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { findOperation } from "../../src/operations/operation-lookup.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { tenant } from "../harness/tenant.js";

const NOT_FOUND = { error: "operation not found", status: 404 };

describe("findOperation", () => {
  it("finds the project's operation (any case of its id); 404 alike for everything else", async () => {
    const store = SqliteMetadataStore.open(":memory:");
    try {
      const a = await store.projects.create("a");
      const b = await store.projects.create("b");
      const id = newId();
      await store.operations.insert({
        id,
        projectId: a.id,
        kind: "image_import",
        metadata: {},
        createdAt: 1,
      });
      expect((await findOperation(store.operations, a.id, id)).id).toBe(id);
      expect((await findOperation(store.operations, a.id, id.toUpperCase())).id).toBe(id);
      expect((await findOperation(store.operations, a.id, id, "image_import")).id).toBe(id);
      for (const [project, raw, kind] of [
        [b.id, id, undefined],
        [a.id, newId(), undefined],
        [a.id, "not-a-uuid", undefined],
        [a.id, `${id}'--`, undefined],
        [a.id, id, "instance"],
      ] as const) {
        const err = await findOperation(store.operations, project, raw, kind).catch((e: unknown) => e);
        expect(isAppError(err) && err.kind === "not_found" && err.message === "operation not found").toBe(
          true,
        );
      }
    } finally {
      await store.close();
    }
  });
});

describe("routes that name an operation", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("answer another tenant's, an unknown, a malformed id and a non-instance (subprocesses) with the same 404", async () => {
    const owner = await tenant(t, "owner");
    const other = await tenant(t, "other");
    // An import that fails at once is an operation without any image or runtime.
    const r = await owner.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: "docker://127.0.0.1:9/nothing:latest" } },
    });
    expect(r.status).toBe(202);
    const { uuid } = (await r.json()) as { uuid: string };
    await waitOperation(owner, uuid);
    const routes = (id: string): Array<[string, RequestInit & { json?: unknown }]> => [
      [`/v1/operations/${id}`, {}],
      [`/v1/operations/${id}/events`, {}],
      [`/v1/operations/${id}`, { method: "DELETE" }],
      [`/v1/operations/${id}/subprocesses/1`, {}],
      [`/v1/operations/${id}/subprocesses`, { method: "POST", json: { command: "true" } }],
    ];
    const answer = async (who: typeof owner, path: string, init: RequestInit & { json?: unknown }) => {
      const res = await who.api(path, init);
      return { status: res.status, body: (await res.json()) as unknown };
    };
    // The owner reaches it (the subprocess routes: not an instance, so 404 as well).
    expect((await answer(owner, `/v1/operations/${uuid}`, {})).status).toBe(200);
    expect((await owner.api(`/v1/operations/${uuid.toUpperCase()}/events`)).status).toBe(200);
    for (const [path, init] of routes(uuid).slice(3))
      expect(await answer(owner, path, init), path).toEqual({ status: 404, body: NOT_FOUND });
    for (const id of [uuid, newId(), "zzz"])
      for (const [path, init] of routes(id))
        expect(await answer(id === uuid ? other : owner, path, init), path).toEqual({
          status: 404,
          body: NOT_FOUND,
        });
  });
});
