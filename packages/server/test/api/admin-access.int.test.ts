/**
 * The admin API for projects and tokens (issue 15, the console's Admin view) against a real
 * server: admin tokens only; a token created over HTTP has exactly the permissions given, never
 * more than its creator, and its secret only in the 201; revocation and expiry stop it at once;
 * hostile input is a 4xx that names the field.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { hashToken } from "../../src/auth/tokens.js";
import { startTestServer, type TestServer } from "../harness/in-process.js";
import { tenant } from "../harness/tenant.js";
import { leaks } from "./api-harness.js";

const U = "00000000-0000-4000-8000-000000000001";

interface TokenJson {
  id: string;
  name: string;
  project: string;
  permissions: string[];
  admin: boolean;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  token?: string;
}

describe("admin API: projects and tokens", () => {
  let t: TestServer;
  const bodies: string[] = [];

  /** fetch with `secret` (the bootstrap admin token when omitted); remembers every body. */
  const call = async (
    path: string,
    init: RequestInit & { json?: unknown; secret?: string; project?: string } = {},
  ) => {
    const { secret, project, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (secret !== undefined) headers.set("authorization", `Bearer ${secret}`);
    if (project !== undefined) headers.set("project", project);
    const res = await t.api(path, { ...rest, headers });
    const text = await res.text();
    bodies.push(text);
    return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
  const create = (json: unknown, secret?: string) =>
    call("/v1/admin/tokens", { method: "POST", json, ...(secret ? { secret } : {}) });
  const created = async (json: unknown, secret?: string): Promise<TokenJson & { token: string }> => {
    const r = await create(json, secret);
    expect(r.status, r.text).toBe(201);
    return r.json() as unknown as TokenJson & { token: string };
  };

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    await t.server.store.projects.create("team-a");
  }, 120_000);
  afterAll(async () => {
    for (const b of bodies) expect(leaks(b, t.dataDir), b.slice(0, 300)).toEqual([]);
    await t?.close();
  });

  it("non-admin tokens get 403 on every admin endpoint, no token 401", async () => {
    const q = await tenant(t, "team-a");
    const ends: [string, string, unknown?][] = [
      ["GET", "/v1/admin/projects"],
      ["POST", "/v1/admin/projects", { name: "sneaky" }],
      ["GET", "/v1/admin/tokens"],
      ["POST", "/v1/admin/tokens", { project: "team-a", name: "x", permissions: ["list"] }],
      ["DELETE", `/v1/admin/tokens/${U}`],
    ];
    for (const [method, path, json] of ends) {
      const r = await call(path, { method, secret: q.token, ...(json ? { json } : {}) });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.json()).toEqual({ error: expect.stringContaining("admin token"), status: 403 });
      const anon = await call(path, { method, headers: { authorization: "" }, ...(json ? { json } : {}) });
      expect(anon.status, `${method} ${path}`).toBe(401);
    }
    expect(await t.server.store.projects.findByName("sneaky")).toBeUndefined();
  });

  it("GET /v1/admin/projects lists every project with the limits whoami shows and its usage", async () => {
    await t.server.store.projects.setLimits((await t.server.store.projects.resolve("team-a")).id, {
      instance_max_concurrency: 3,
    });
    const r = await call("/v1/admin/projects");
    expect(r.status).toBe(200);
    const projects = r.json()["projects"] as Record<string, unknown>[];
    expect(projects.map((p) => p["name"]).sort()).toEqual(["default", "public", "team-a"]);
    const a = projects.find((p) => p["name"] === "team-a") as Record<string, unknown>;
    const q = await tenant(t, "team-a");
    const whoami = (await (await q.api("/v1/whoami")).json()) as { limits: unknown };
    expect(a["limits"]).toEqual(whoami.limits);
    expect(a["limits"]).toMatchObject({ instance_max_concurrency: 3 });
    expect(a["created_at"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(a["usage"]).toMatchObject({ images: 0, charged_bytes: 0, storage_max_bytes: null });
  });

  it("POST /v1/admin/projects creates a project; a duplicate is 409, a bad name 400", async () => {
    const r = await call("/v1/admin/projects", { method: "POST", json: { name: "team-b" } });
    expect(r.status, r.text).toBe(201);
    expect(r.json()).toMatchObject({ name: "team-b", limits: { instance_max_concurrency: 10 } });
    expect(await t.server.store.projects.findByName("team-b")).toBeDefined();
    expect((await call("/v1/admin/projects", { method: "POST", json: { name: "team-b" } })).status).toBe(409);
    for (const name of ["", "UPPER", "a/b", "a\u0000b", "x".repeat(64), 7, null]) {
      const bad = await call("/v1/admin/projects", { method: "POST", json: { name } });
      expect(bad.status, JSON.stringify(name)).toBe(400);
      expect(bad.json()["error"]).toMatch(/name/);
    }
  });

  it("a created token has exactly the permissions given, in its project; the secret is in the 201 only", async () => {
    const c = await created({ project: "team-a", name: "ci reader", permissions: ["list", "cancel"] });
    expect(c).toMatchObject({
      name: "ci reader",
      project: "team-a",
      permissions: ["list", "cancel"],
      admin: false,
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
    });
    expect(c.token).toMatch(/^ctr_[A-Za-z0-9_-]{43}$/);
    const who = await call("/v1/whoami", { secret: c.token });
    expect(who.json()).toMatchObject({
      token_uuid: c.id,
      project: "team-a",
      permissions: { list: true, cancel: true, spawn: false, import: false, delete_image: false },
    });
    expect((await call("/v1/images", { secret: c.token })).status).toBe(200);
    // Permission is checked before the image is looked up: 403 without it, 404 with it.
    const tag = await call(`/v1/images/${U}/tag`, { method: "PATCH", secret: c.token, json: { tag: "x" } });
    expect(tag.status).toBe(403);
    expect(tag.json()["error"]).toContain("set_image_tag");
    expect((await call(`/v1/images/${U}`, { method: "DELETE", secret: c.token })).status).toBe(403);
    const imp = await call("/v1/images/import", {
      method: "POST",
      secret: c.token,
      json: { registry: { url: "docker://127.0.0.1:1/x:1" } },
    });
    expect(imp.status).toBe(403);
    // A non-admin token may not select another project.
    expect((await call("/v1/images", { secret: c.token, project: "default" })).status).toBe(403);

    const list = await call("/v1/admin/tokens?project=team-a");
    expect(list.status).toBe(200);
    const listed = (list.json()["tokens"] as TokenJson[]).find((x) => x.id === c.id);
    const { token: _secret, ...shown } = c;
    // Used since: its last use is recorded (to the minute), the rest as created.
    expect(listed).toEqual({ ...shown, last_used_at: expect.stringMatching(/Z$/) });
    const used = Date.parse(listed?.last_used_at ?? "");
    expect(Math.abs(used - Date.now())).toBeLessThan(60_000);
    expect(list.text).not.toContain(c.token);
    expect(list.text).not.toContain(hashToken(c.token));
    expect(list.text).not.toMatch(/"(token|hash)"/);
  });

  it("GET /v1/admin/tokens lists every project's tokens, or one project's; an unknown project is 404", async () => {
    const b = await created({ project: "team-b", name: "b", permissions: [] });
    const all = (await call("/v1/admin/tokens")).json()["tokens"] as TokenJson[];
    expect(all.map((x) => x.project)).toEqual(expect.arrayContaining(["default", "team-a", "team-b"]));
    expect(all.find((x) => x.project === "default")).toMatchObject({ admin: true });
    const onlyB = (await call("/v1/admin/tokens?project=team-b")).json()["tokens"] as TokenJson[];
    expect(onlyB.map((x) => x.id)).toEqual([b.id]);
    expect(b.permissions).toEqual([]);
    for (const q of ["nope", "NOPE", "x".repeat(64)]) {
      const r = await call(`/v1/admin/tokens?project=${q}`);
      expect(r.status, q).toBe(404);
    }
    // A NUL anywhere in the URL is refused before routing (the server's URL rules).
    expect((await call("/v1/admin/tokens?project=a%00b")).status).toBe(400);
    expect((await call(`/v1/admin/tokens?project=${"x".repeat(65)}`)).status).toBe(400);
  });

  it("DELETE revokes at once (401 on the next request); again is 204; an unknown id is 404", async () => {
    const c = await created({ project: "team-a", name: "short-lived", permissions: ["list"] });
    expect((await call("/v1/images", { secret: c.token })).status).toBe(200);
    const del = await call(`/v1/admin/tokens/${c.id}`, { method: "DELETE" });
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    const after = await call("/v1/images", { secret: c.token });
    expect(after.status).toBe(401);
    expect(after.json()).toEqual({ error: "invalid token", status: 401 });
    expect((await call(`/v1/admin/tokens/${c.id.toUpperCase()}`, { method: "DELETE" })).status).toBe(204);
    const listed = ((await call("/v1/admin/tokens?project=team-a")).json()["tokens"] as TokenJson[]).find(
      (x) => x.id === c.id,
    );
    expect(listed?.revoked_at).toMatch(/Z$/);
    expect((await call("/v1/admin/tokens/%00", { method: "DELETE" })).status).toBe(400);
    for (const id of [U, "not-a-uuid", "..%2F..%2Fetc"]) {
      const r = await call(`/v1/admin/tokens/${id}`, { method: "DELETE" });
      expect(r.status, id).toBe(404);
    }
    expect((await call(`/v1/admin/tokens/${"a".repeat(65)}`, { method: "DELETE" })).status).toBe(400);
  });

  it("an admin token may revoke itself; it stops working with that request", async () => {
    const a = await created({ project: "default", name: "self", permissions: ["list"], admin: true });
    expect((await call("/v1/admin/tokens", { secret: a.token })).status).toBe(200);
    expect((await call(`/v1/admin/tokens/${a.id}`, { method: "DELETE", secret: a.token })).status).toBe(204);
    expect((await call("/v1/admin/tokens", { secret: a.token })).status).toBe(401);
  });

  it("expiry: expires_at is now + expires_in_seconds, and an expired token is refused", async () => {
    const before = Math.floor(Date.now() / 1000);
    const c = await created({
      project: "team-a",
      name: "exp",
      permissions: ["list"],
      expires_in_seconds: 600,
    });
    const at = Date.parse(c.expires_at ?? "") / 1000;
    expect(at).toBeGreaterThanOrEqual(before + 600);
    expect(at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 600);
    const who = await call("/v1/whoami", { secret: c.token });
    expect(who.json()["token_expiration"]).toBe(at);
    // Its time runs out (moved to the past rather than waited for).
    await t.server.store.db
      .updateTable("tokens")
      .set({ expires_at: Math.floor(Date.now() / 1000) - 1 })
      .where("id", "=", c.id)
      .execute();
    const r = await call("/v1/images", { secret: c.token });
    expect(r.status).toBe(401);
    expect(r.json()["error"]).toBe("token expired");
  });

  it("a token is never more powerful than its creator", async () => {
    // An admin token restricted to list + spawn.
    const narrow = await created({
      project: "default",
      name: "narrow admin",
      permissions: ["list", "spawn"],
      admin: true,
    });
    const more = await create(
      { project: "team-a", name: "x", permissions: ["list", "import"] },
      narrow.token,
    );
    expect(more.status).toBe(403);
    expect(more.json()["error"]).toContain('"import"');
    const ok = await created({ project: "team-a", name: "x", permissions: ["spawn"] }, narrow.token);
    expect(ok.admin).toBe(false);
    // Admin is never implied: only `"admin": true` makes one, and it may select any project.
    const adm = await created({ project: "team-a", name: "adm", permissions: ["list"], admin: true });
    expect(adm.admin).toBe(true);
    expect((await call("/v1/images", { secret: adm.token, project: "team-b" })).status).toBe(200);
    expect((await call("/v1/admin/projects", { secret: adm.token })).status).toBe(200);

    // A creator that expires cannot make a token that outlives it.
    const mortal = await created({
      project: "default",
      name: "mortal",
      permissions: ["list"],
      admin: true,
      expires_in_seconds: 3600,
    });
    const forever = await create({ project: "team-a", name: "f", permissions: ["list"] }, mortal.token);
    expect(forever.status).toBe(403);
    expect(forever.json()["error"]).toContain("outlive");
    const longer = await create(
      { project: "team-a", name: "f", permissions: ["list"], expires_in_seconds: 7200 },
      mortal.token,
    );
    expect(longer.status).toBe(403);
    const within = await created(
      { project: "team-a", name: "f", permissions: ["list"], expires_in_seconds: 60 },
      mortal.token,
    );
    expect(within.expires_at).not.toBeNull();
  });

  it("last_used_at moves at most once a minute per token", async () => {
    const c = await created({ project: "team-a", name: "used", permissions: ["list"] });
    const lastUsed = async () =>
      (
        await t.server.store.db
          .selectFrom("tokens")
          .select("last_used_at")
          .where("id", "=", c.id)
          .executeTakeFirstOrThrow()
      ).last_used_at;
    expect(await lastUsed()).toBeNull();
    expect((await call("/v1/whoami", { secret: c.token })).status).toBe(200);
    const first = await lastUsed();
    expect(first).not.toBeNull();
    expect((await call("/v1/whoami", { secret: c.token })).status).toBe(200);
    expect(await lastUsed()).toBe(first);
    // A use more than a minute after the last one is recorded.
    const old = Date.now() - 61_000;
    await t.server.store.db.updateTable("tokens").set({ last_used_at: old }).where("id", "=", c.id).execute();
    expect((await call("/v1/whoami", { secret: c.token })).status).toBe(200);
    expect(await lastUsed()).toBeGreaterThan(old + 60_000);
    // A refused token (revoked) is not recorded as used.
    await t.server.store.tokens.revoke(c.id);
    await t.server.store.db.updateTable("tokens").set({ last_used_at: old }).where("id", "=", c.id).execute();
    expect((await call("/v1/whoami", { secret: c.token })).status).toBe(401);
    expect(await lastUsed()).toBe(old);
  });

  it("creation and revocation leave an audit line in the server log, never the secret", async () => {
    const info = vi.spyOn(t.server.logger, "info");
    try {
      const c = await created({ project: "team-a", name: "audited", permissions: ["list"] });
      expect((await call(`/v1/admin/tokens/${c.id}`, { method: "DELETE" })).status).toBe(204);
      const lines = info.mock.calls.map((args) => JSON.stringify(args));
      const bootstrap = (await t.server.store.tokens.list()).find((x) => x.admin)?.id;
      expect(lines.find((l) => l.includes("token created") && l.includes(c.id))).toContain(
        `"by":"${bootstrap}"`,
      );
      expect(lines.find((l) => l.includes("token revoked") && l.includes(c.id))).toBeDefined();
      for (const l of lines) {
        expect(l).not.toContain(c.token);
        expect(l).not.toContain(hashToken(c.token));
      }
    } finally {
      info.mockRestore();
    }
  });

  it("hostile token requests are 400 naming the field (nothing is created)", async () => {
    const count = await t.server.store.tokens.count();
    const ok = { project: "team-a", name: "n", permissions: ["list"] };
    const cases: [unknown, RegExp][] = [
      [{ ...ok, name: "x".repeat(201) }, /name/],
      [{ ...ok, name: "x".repeat(1_000_000) }, /name/],
      [{ ...ok, name: "a\u0000b" }, /name/],
      [{ ...ok, name: "line\nbreak" }, /name/],
      [{ ...ok, name: "" }, /name/],
      [{ ...ok, name: 5 }, /name/],
      [{ ...ok, permissions: ["list", "root"] }, /permissions/],
      [{ ...ok, permissions: ["list", "list"] }, /permissions/],
      [{ ...ok, permissions: ["list\u0000"] }, /permissions/],
      [{ ...ok, permissions: "list" }, /permissions/],
      [{ ...ok, permissions: [["list"]] }, /permissions/],
      [{ ...ok, permissions: Array(10_000).fill("list") }, /permissions/],
      [{ ...ok, expires_in_seconds: -1 }, /expires_in_seconds/],
      [{ ...ok, expires_in_seconds: 0 }, /expires_in_seconds/],
      [{ ...ok, expires_in_seconds: 1.5 }, /expires_in_seconds/],
      [{ ...ok, expires_in_seconds: "60" }, /expires_in_seconds/],
      [{ ...ok, expires_in_seconds: 1e300 }, /expires_in_seconds/],
      [{ ...ok, expires_in_seconds: 10 * 365 * 86_400 + 1 }, /expires_in_seconds/],
      [{ ...ok, admin: "yes" }, /admin/],
      [{ ...ok, project: "a\u0000b" }, /project/],
      [{ ...ok, project: "x".repeat(100_000) }, /project/],
      [{ ...ok, project: "../default" }, /project/],
      [{ name: "n", permissions: [] }, /project/],
      [{ project: "team-a", permissions: [] }, /name/],
      [{ project: "team-a", name: "n" }, /permissions/],
      [[ok], /body/],
      ["string", /body/],
    ];
    for (const [json, field] of cases) {
      const r = await create(json);
      expect(r.status, JSON.stringify(json).slice(0, 100)).toBe(400);
      expect(r.json()["error"], JSON.stringify(json).slice(0, 100)).toMatch(field);
      expect(String(r.json()["error"]).length).toBeLessThan(300);
    }
    const unknown = await create({ ...ok, project: "no-such-project" });
    expect(unknown.status).toBe(404);
    const junk = await call("/v1/admin/tokens", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"project":',
    });
    expect(junk.status).toBe(400);
    expect(await t.server.store.tokens.count()).toBe(count);
  });
});
