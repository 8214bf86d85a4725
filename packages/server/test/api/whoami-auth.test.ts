import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isUuid } from "../../src/core/ids.js";
import { ADMIN_TOKEN, expectErrorBody, leaks, startApi, type TestApi } from "./api-harness.js";

const ALL = {
  list: true,
  spawn: true,
  spawn_disposable: true,
  import: true,
  cancel: true,
  set_image_tag: true,
  delete_image: true,
};
const DEFAULT_LIMITS = {
  instance_max_timeout: 3600,
  instance_max_concurrency: 10,
  instance_max_layer_bytes: 12884901888,
  images_import_max_concurrency: 5,
  images_import_max_timeout: 3600,
  images_import_max_unpacked_bytes: 17179869184,
  images_ttl_seconds: 604800,
  files_ttl_seconds: 86400,
  storage_max_bytes: 9007199254740991,
};

describe("GET /v1/whoami and authentication", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    for (const body of api.seen) expect(leaks(body, api.dataDir), body).toEqual([]);
    await api.close();
  });

  it("answers the shape of contree-api.md 2.1 for the bootstrap admin token", async () => {
    const res = await api.call({ method: "GET", url: "/v1/whoami" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    const body = res.json() as Record<string, unknown>;
    const tokens = await api.store.tokens.list();
    expect(body).toEqual({
      token_uuid: tokens[0]?.id,
      token_expiration: null,
      project: "default",
      permissions: ALL,
      limits: DEFAULT_LIMITS,
      operations_stat: {},
      admin: true,
    });
    expect(isUuid(body["token_uuid"] as string)).toBe(true);
  });

  it("lists every permission, false ones included", async () => {
    const t = await api.token("perm-proj", { permissions: { spawn: false, import: false, cancel: false } });
    const body = (await api.call({ method: "GET", url: "/v1/whoami", token: t.secret })).json() as Record<
      string,
      unknown
    >;
    expect(body["permissions"]).toEqual({ ...ALL, spawn: false, import: false, cancel: false });
    expect(body["token_uuid"]).toBe(t.id);
    expect(body["admin"]).toBe(false);
    expect(body["project"]).toBe("perm-proj");
  });

  it("a token stored before delete_image existed has it only if it is an admin token", async () => {
    for (const admin of [false, true]) {
      const t = await api.token(`legacy-${admin}`, { admin });
      const stored = Object.fromEntries(Object.entries(ALL).filter(([k]) => k !== "delete_image"));
      await api.store.db
        .updateTable("tokens")
        .set({ permissions: JSON.stringify(stored) })
        .where("id", "=", t.id)
        .execute();
      const res = await api.call({ method: "GET", url: "/v1/whoami", token: t.secret });
      expect((res.json() as Record<string, unknown>)["permissions"]).toEqual({ ...ALL, delete_image: admin });
    }
  });

  it("token_expiration is integer Unix seconds when the token expires", async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const t = await api.token("exp-proj", { expiresAt: exp });
    const body = (await api.call({ method: "GET", url: "/v1/whoami", token: t.secret })).json() as Record<
      string,
      unknown
    >;
    expect(body["token_expiration"]).toBe(exp);
  });

  it("limits come from server defaults overridden by the project", async () => {
    const t = await api.token("limited");
    await api.store.projects.setLimits(t.projectId, {
      instance_max_concurrency: 2,
      instance_max_timeout: 60,
    });
    const body = (await api.call({ method: "GET", url: "/v1/whoami", token: t.secret })).json() as Record<
      string,
      unknown
    >;
    expect(body["limits"]).toEqual({
      ...DEFAULT_LIMITS,
      instance_max_concurrency: 2,
      instance_max_timeout: 60,
    });
  });

  it("operations_stat counts the project's operations per status", async () => {
    const t = await api.token("ops-proj");
    const other = await api.token("ops-other");
    const now = Date.now();
    const row = (id: string, projectId: string, status: string) => ({
      id,
      project_id: projectId,
      kind: "instance",
      status,
      metadata: "{}",
      created_at: now,
    });
    // Only the columns every schema revision has; other subsystems add columns with defaults.
    await api.store.db
      .insertInto("operations")
      .values([
        row("00000000-0000-4000-8000-000000000001", t.projectId, "EXECUTING"),
        row("00000000-0000-4000-8000-000000000002", t.projectId, "EXECUTING"),
        row("00000000-0000-4000-8000-000000000003", t.projectId, "SUCCESS"),
        row("00000000-0000-4000-8000-000000000004", other.projectId, "FAILED"),
      ] as never)
      .execute();
    const body = (await api.call({ method: "GET", url: "/v1/whoami", token: t.secret })).json() as Record<
      string,
      unknown
    >;
    expect(body["operations_stat"]).toEqual({ EXECUTING: 2, SUCCESS: 1 });
  });

  describe("401", () => {
    it.each([
      ["no Authorization header", undefined],
      ["a non-Bearer scheme", `Basic ${Buffer.from("u:p").toString("base64")}`],
      ["an empty bearer", "Bearer "],
      ["an unknown token", "Bearer not-a-real-token"],
      ["a token with a suffix", `Bearer ${ADMIN_TOKEN}x`],
      ["two tokens", `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}`],
    ])("for %s", async (_what, authorization) => {
      const res = await api.app.inject({
        method: "GET",
        url: "/v1/whoami",
        headers: authorization === undefined ? {} : { authorization },
      });
      api.seen.push(res.body);
      expectErrorBody(res, 401);
    });

    it("is case-insensitive about the scheme", async () => {
      const res = await api.app.inject({
        method: "GET",
        url: "/v1/whoami",
        headers: { authorization: `bearer ${ADMIN_TOKEN}` },
      });
      expect(res.statusCode).toBe(200);
    });

    it("for a revoked token, right after revocation", async () => {
      const t = await api.token("revoke-me");
      expect((await api.call({ method: "GET", url: "/v1/whoami", token: t.secret })).statusCode).toBe(200);
      await api.store.tokens.revoke(t.id);
      expect(
        expectErrorBody(await api.call({ method: "GET", url: "/v1/whoami", token: t.secret }), 401).error,
      ).toBe("invalid token");
      expectErrorBody(await api.call({ method: "GET", url: "/v1/files", token: t.secret }), 401);
    });

    it("for an expired token", async () => {
      const t = await api.token("expired", { expiresAt: Math.floor(Date.now() / 1000) - 1 });
      expect(
        expectErrorBody(await api.call({ method: "GET", url: "/v1/whoami", token: t.secret }), 401).error,
      ).toBe("token expired");
    });

    it("on every authenticated route, before anything else happens", async () => {
      for (const [method, url] of [
        ["GET", "/v1/files"],
        ["GET", `/v1/files/${"a".repeat(64)}`],
        ["HEAD", `/v1/files/${"a".repeat(64)}`],
        ["POST", "/v1/files"],
      ] as const) {
        const res = await api.call({
          method,
          url,
          token: null,
          payload: method === "POST" ? "data" : undefined,
        });
        expect(res.statusCode, `${method} ${url}`).toBe(401);
      }
      expect(
        (
          await api.store.files.list((await api.store.projects.resolve("default")).id, {
            limit: 10,
            offset: 0,
          })
        ).length,
      ).toBe(0);
    });
  });

  describe("Project header", () => {
    it("the token's own project, by name or id, is fine; empty means the token's own", async () => {
      const t = await api.token("home");
      for (const project of ["home", t.projectId, "", " home "]) {
        const res = await api.call({ method: "GET", url: "/v1/whoami", token: t.secret, project });
        expect(res.statusCode, JSON.stringify(project)).toBe(200);
        expect((res.json() as { project: string }).project).toBe("home");
      }
    });

    it("another existing project is 403 for a non-admin token", async () => {
      const t = await api.token("tenant-x");
      await api.token("tenant-y");
      const res = await api.call({ method: "GET", url: "/v1/whoami", token: t.secret, project: "tenant-y" });
      expect(expectErrorBody(res, 403).error).toMatch(/may not use project "tenant-y"/);
      expectErrorBody(
        await api.call({ method: "GET", url: "/v1/files", token: t.secret, project: "tenant-y" }),
        403,
      );
    });

    it("an unknown project is 403 (not 404: existence is not revealed)", async () => {
      const t = await api.token("tenant-z");
      expectErrorBody(
        await api.call({ method: "GET", url: "/v1/whoami", token: t.secret, project: "nope" }),
        403,
      );
      expectErrorBody(await api.call({ method: "GET", url: "/v1/whoami", project: "nope" }), 403);
    });

    it("an admin token may switch to any project, by name or id", async () => {
      const other = await api.token("switch-target");
      for (const project of ["switch-target", other.projectId]) {
        const res = await api.call({ method: "GET", url: "/v1/whoami", project });
        expect(res.statusCode).toBe(200);
        expect((res.json() as { project: string }).project).toBe("switch-target");
      }
    });

    it("does not echo a huge header back", async () => {
      const t = await api.token("echo");
      const res = await api.call({
        method: "GET",
        url: "/v1/whoami",
        token: t.secret,
        project: "p".repeat(5000),
      });
      expect(expectErrorBody(res, 403).error.length).toBeLessThan(200);
    });
  });

  it("echoes a sane X-Request-ID and invents one otherwise", async () => {
    const a = await api.call({ method: "GET", url: "/v1/whoami", headers: { "x-request-id": "req-123" } });
    expect(a.headers["x-request-id"]).toBe("req-123");
    const b = await api.call({
      method: "GET",
      url: "/v1/whoami",
      headers: { "x-request-id": "bad id\twith spaces" },
    });
    expect(isUuid(String(b.headers["x-request-id"]))).toBe(true);
  });
});
