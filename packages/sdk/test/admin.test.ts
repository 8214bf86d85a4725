// client.admin (server extension, admin tokens only) against the real server: a token made with it
// works with exactly its permissions, is listed without its secret, and stops at once when revoked.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isBadRequest, isForbidden, isNotFound, isUnauthorized } from "../src/index.js";
import { type LiveServer, startLiveServer } from "./live-server.js";

describe("client.admin against the real server", () => {
  let live: LiveServer;
  beforeAll(async () => {
    live = await startLiveServer({ busybox: false });
  }, 120_000);
  afterAll(async () => {
    await live?.close();
  }, 120_000);

  it("projects, then a token created, used, listed and revoked", async () => {
    const admin = live.client().admin;
    const p = await admin.createProject("sdk-admin");
    expect(p).toMatchObject({ name: "sdk-admin", limits: { instance_max_concurrency: 10 } });
    const projects = await admin.projects();
    expect(projects.map((x) => x.name)).toContain("sdk-admin");
    expect(projects.find((x) => x.name === "sdk-admin")?.usage?.images).toBe(0);

    const made = await admin.createToken({
      project: "sdk-admin",
      name: "reader",
      permissions: ["list"],
      expiresInSec: 3600,
    });
    expect(made).toMatchObject({
      project: "sdk-admin",
      permissions: ["list"],
      admin: false,
      revoked_at: null,
    });
    expect(made.expires_at).not.toBeNull();
    const reader = live.client({ token: made.token, retry: false });
    const me = await reader.whoami();
    expect(me).toMatchObject({ token_uuid: made.id, project: "sdk-admin" });
    expect(me.permissions).toMatchObject({ list: true, spawn: false });
    // Not an admin token: every admin call is refused.
    expect(isForbidden(await reader.admin.projects().catch((e: unknown) => e))).toBe(true);

    const listed = await admin.tokens({ project: "sdk-admin" });
    expect(listed.map((x) => x.id)).toEqual([made.id]);
    expect(JSON.stringify(listed)).not.toContain(made.token);

    await admin.revokeToken(made.id);
    expect(isUnauthorized(await reader.whoami().catch((e: unknown) => e))).toBe(true);
    expect((await admin.tokens({ project: "sdk-admin" }))[0]?.revoked_at).not.toBeNull();
    expect(isNotFound(await admin.revokeToken("00000000-0000-4000-8000-000000000009").catch((e) => e))).toBe(
      true,
    );
  });

  it("bad input is refused before or by the server", async () => {
    const admin = live.client({ retry: false }).admin;
    expect(() =>
      admin.createToken({ project: "default", name: "x", permissions: [], expiresInSec: -5 }),
    ).toThrow(/expiresInSec/);
    const e = await admin
      .createToken({ project: "default", name: "x", permissions: ["root" as "list"] })
      .catch((err: unknown) => err);
    expect(isBadRequest(e)).toBe(true);
    expect((e as Error).message).toContain("permissions");
  });
});
