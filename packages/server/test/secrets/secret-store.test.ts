/**
 * Sealing and the key, against real SQLite and real files: the database never holds a value,
 * the key file is made 0600 only when a secret is stored, and a wrong or missing key is a clear
 * error that names the problem (never garbage, never part of the value).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../../src/core/errors.js";
import { openMetadata, openSecrets } from "../../src/main.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";

describe("secret store", () => {
  let dir: string;
  let store: MetadataStore;
  let projectId: string;
  const value = Buffer.from(`ghp_${randomBytes(20).toString("hex")}`);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-secrets-"));
    store = openMetadata(dir);
    projectId = (await store.projects.create("p")).id;
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function failure(p: Promise<unknown>): Promise<{ kind: string; message: string }> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!isAppError(err)) throw new Error(`expected an AppError, got ${String(err)}`);
    return { kind: err.kind, message: err.message };
  }

  it("seals with a key file made 0600 at the first set; the database files never hold the value", async () => {
    const s = openSecrets({ dataDir: dir }, store);
    expect(await s.list(projectId)).toEqual([]);
    // Listing and revealing nothing make no key.
    expect(await readdir(dir)).not.toContain("secrets.key");
    expect(await s.set(projectId, "GH", value)).toBe(true);
    expect((await stat(join(dir, "secrets.key"))).mode & 0o777).toBe(0o600);
    expect((await s.reveal(projectId, [{ name: "GH" }])).get("GH")).toEqual(value);
    await store.close();
    for (const f of await readdir(dir)) {
      if (!f.startsWith("metadata.db")) continue;
      const data = await readFile(join(dir, f));
      expect(data.includes(value), f).toBe(false);
      expect(data.includes(Buffer.from(value.toString("base64"))), f).toBe(false);
      expect(data.includes(Buffer.from(value.toString("hex"))), f).toBe(false);
    }
    store = openMetadata(dir);
    // A second service (a restarted server) over the same files opens it.
    expect(
      (await openSecrets({ dataDir: dir }, store).reveal(projectId, [{ name: "GH" }])).get("GH"),
    ).toEqual(value);
  });

  it("a server with another key says so, naming both key ids; a configured key is used over the file", async () => {
    const k1 = randomBytes(32).toString("hex");
    const k2 = randomBytes(32).toString("base64");
    await openSecrets({ dataDir: dir, secretsKey: k1 }, store).set(projectId, "GH", value);
    // The configured key made no file.
    expect(await readdir(dir)).not.toContain("secrets.key");
    const e = await failure(
      openSecrets({ dataDir: dir, secretsKey: k2 }, store).reveal(projectId, [{ name: "GH" }]),
    );
    expect(e.kind).toBe("failed_precondition");
    expect(e.message).toMatch(
      /^secret "GH" was sealed with another secrets key \(key id [0-9a-f]{16}; this server's is [0-9a-f]{16}\)/,
    );
    expect(e.message).not.toContain(value.toString());
    expect(
      (await openSecrets({ dataDir: dir, secretsKey: k1 }, store).reveal(projectId, [{ name: "GH" }])).get(
        "GH",
      ),
    ).toEqual(value);
  });

  it("a missing key file is an error, not a new key; a damaged row does not authenticate", async () => {
    const s = openSecrets({ dataDir: dir }, store);
    await s.set(projectId, "GH", value);
    await rm(join(dir, "secrets.key"));
    const fresh = openSecrets({ dataDir: dir }, store);
    const e = await failure(fresh.reveal(projectId, [{ name: "GH" }]));
    expect(e.kind).toBe("failed_precondition");
    expect(e.message).toMatch(/^no secrets key: /);
    expect(await readdir(dir)).not.toContain("secrets.key");
    // A short key file is named as such.
    await writeFile(join(dir, "secrets.key"), "short", { mode: 0o600 });
    expect(
      (await failure(openSecrets({ dataDir: dir }, store).reveal(projectId, [{ name: "GH" }]))).message,
    ).toMatch(/not a 32-byte key/);
    // The right key but a flipped byte in the row: data_loss, not garbage.
    await rm(join(dir, "secrets.key"));
    const key = randomBytes(32).toString("hex");
    const k = openSecrets({ dataDir: dir, secretsKey: key }, store);
    await k.set(projectId, "GH", value);
    const row = await store.db.selectFrom("secrets").select("sealed").executeTakeFirstOrThrow();
    const sealed = Buffer.from(row.sealed);
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 1;
    await store.db.updateTable("secrets").set({ sealed }).execute();
    const d = await failure(k.reveal(projectId, [{ name: "GH" }]));
    expect(d.kind).toBe("data_loss");
    expect(d.message).toBe('secret "GH" is damaged (it does not authenticate): store it again');
  });

  it("a sealed value moved to another name or project does not open", async () => {
    const s = openSecrets({ dataDir: dir }, store);
    await s.set(projectId, "A", value);
    await s.set(projectId, "B", Buffer.from("another-value-123"));
    const a = await store.db
      .selectFrom("secrets")
      .select("sealed")
      .where("name", "=", "A")
      .executeTakeFirstOrThrow();
    await store.db.updateTable("secrets").set({ sealed: a.sealed }).where("name", "=", "B").execute();
    expect((await failure(s.reveal(projectId, [{ name: "B" }]))).kind).toBe("data_loss");
  });

  it("names and values are checked; delete of an unknown name is a 404", async () => {
    const s = openSecrets({ dataDir: dir }, store);
    expect((await failure(s.set(projectId, "1BAD", value))).kind).toBe("invalid_argument");
    expect((await failure(s.set(projectId, "OK", Buffer.from("short")))).kind).toBe("invalid_argument");
    expect((await failure(s.set(projectId, "OK", Buffer.from("has\0nul-inside")))).kind).toBe(
      "invalid_argument",
    );
    expect((await failure(s.delete(projectId, "NOPE"))).kind).toBe("not_found");
  });

  it("each secret's policy: header hosts it may go to, env mode allowed or not; checked again at reveal", async () => {
    const s = openSecrets({ dataDir: dir }, store);
    await s.set(projectId, "GH", value, { hosts: ["API.github.com.", "*.githubusercontent.com"] });
    expect(await s.list(projectId)).toMatchObject([
      { name: "GH", hosts: ["api.github.com", "*.githubusercontent.com"], allowEnv: true },
    ]);
    await s.assertUsable(projectId, [{ name: "GH" }, { name: "GH", host: "raw.githubusercontent.com" }]);
    for (const host of ["github.com", "githubusercontent.com", "evil.com", "*.github.com"]) {
      const e = await failure(s.assertUsable(projectId, [{ name: "GH", host }]));
      expect(e.kind, host).toBe("permission_denied");
    }
    // Replaced with env mode forbidden: a run accepted before now fails at reveal.
    await s.set(projectId, "GH", value, { hosts: ["api.github.com"], allowEnv: false });
    expect((await failure(s.reveal(projectId, [{ name: "GH" }]))).message).toBe(
      'secret "GH" may not be given to a run as its value (header mode only)',
    );
    expect((await s.reveal(projectId, [{ name: "GH", host: "api.github.com" }])).get("GH")).toEqual(value);
    expect((await failure(s.set(projectId, "GH", value, { hosts: ["bad host"] }))).kind).toBe(
      "invalid_argument",
    );
  });

  it("a secret deleted after a run was accepted fails that run by name, before any key is needed", async () => {
    const s = openSecrets({ dataDir: dir }, store);
    await s.set(projectId, "GH", value);
    await s.delete(projectId, "GH");
    await rm(join(dir, "secrets.key"));
    const e = await failure(s.reveal(projectId, [{ name: "GH" }]));
    expect(e).toEqual({ kind: "not_found", message: 'secret "GH" no longer exists' });
  });
});
