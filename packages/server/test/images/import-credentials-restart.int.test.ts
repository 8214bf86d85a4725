/**
 * Registry credentials of a queued import outlive a restart, sealed (never in clear text on disk
 * or in the database), and are gone once the operation ends. The queue is held by a real
 * per-project limit: images_import_max_concurrency 0 keeps every import PENDING.
 */
import { mkdtempSync } from "node:fs";
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { CREDENTIALS_LOST } from "../../src/images/import-handler.js";
import { createServer, type Server } from "../../src/main.js";
import { createLogger } from "../../src/observability/logger.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { TEST_PRIVATE_REGISTRIES, waitOperation } from "../harness/in-process.js";
import { REGISTRY_PASSWORD, REGISTRY_USER, type RegistryHandle, startRegistry } from "../harness/registry.js";

const TOKEN = "test-admin-token";

interface Running {
  server: Server;
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
}

/** A real server on `dataDir`; `importSlots` 0 holds every import in the queue. */
async function serve(dataDir: string, importSlots: number): Promise<Running> {
  const base = loadConfig(
    { dataDir, listen: "127.0.0.1:0" },
    { CONTREE_BOOTSTRAP_TOKEN: TOKEN, CONTREE_PRIVATE_REGISTRIES: TEST_PRIVATE_REGISTRIES },
  );
  const config = {
    ...base,
    defaultLimits: { ...base.defaultLimits, images_import_max_concurrency: importSlots },
  };
  const server = await createServer(config, createLogger("silent"));
  const url = await server.app.listen({ host: "127.0.0.1", port: 0 });
  return {
    server,
    api(path, init = {}) {
      const { json, ...rest } = init;
      const headers = new Headers(rest.headers);
      headers.set("authorization", `Bearer ${TOKEN}`);
      if (json !== undefined) headers.set("content-type", "application/json");
      return fetch(`${url}${config.pathPrefix}${path}`, {
        ...rest,
        headers,
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
      });
    },
  };
}

/** Every byte the server keeps in its database (WAL and shm included). */
async function databaseBytes(dataDir: string): Promise<Buffer> {
  const names = (await readdir(dataDir)).filter((n) => n.startsWith("metadata.db"));
  return Buffer.concat(await Promise.all(names.map((n) => readFile(join(dataDir, n)))));
}

describe("import credentials across a restart", () => {
  let registry: RegistryHandle;
  let dataDir: string;
  let running: Running | undefined;
  const vault = () => join(dataDir, "import-credentials");
  const password = Buffer.from(REGISTRY_PASSWORD);

  beforeAll(async () => {
    registry = await startRegistry({ auth: "htpasswd", seedFrom: (await fixtures()).registryData });
    dataDir = mkdtempSync(join(tmpdir(), "contree-creds-"));
  });
  afterAll(async () => {
    await running?.server.close();
    await registry?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const queueImport = async (r: Running, password = REGISTRY_PASSWORD): Promise<string> => {
    const res = await r.api("/v1/images/import", {
      method: "POST",
      json: {
        registry: {
          url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}`,
          credentials: { username: REGISTRY_USER, password },
        },
      },
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { uuid: string }).uuid;
  };
  const statusOf = async (r: Running, id: string) =>
    ((await (await r.api(`/v1/operations/${id}`)).json()) as { status: string }).status;

  it("a queued private import runs after a restart; its credentials are sealed, then gone", async () => {
    running = await serve(dataDir, 0);
    const id = await queueImport(running);
    const cancelled = await queueImport(running, "another-secret");
    expect((await running.api(`/v1/operations/${cancelled}`, { method: "DELETE" })).status).toBeLessThan(300);
    expect(await statusOf(running, id)).toBe("PENDING");

    // Sealed on disk: a file per queued operation, no clear text, key and directory private.
    expect((await readdir(vault())).sort()).toEqual([cancelled, id].sort());
    for (const f of await readdir(vault())) {
      const sealed = await readFile(join(vault(), f));
      expect(sealed.includes(password)).toBe(false);
      expect(sealed.includes(Buffer.from("another-secret"))).toBe(false);
      expect(sealed.includes(Buffer.from(REGISTRY_USER))).toBe(false);
    }
    expect((await stat(vault())).mode & 0o777).toBe(0o700);
    expect((await stat(`${vault()}.key`)).mode & 0o777).toBe(0o600);
    expect((await databaseBytes(dataDir)).includes(password)).toBe(false);

    await running.server.close();
    running = await serve(dataDir, 5);
    // The cancelled import's credentials were dropped at start-up, the queued one's kept.
    expect(await readdir(vault())).toEqual([id]);
    const done = await waitOperation((p) => (running as Running).api(p), id, 120_000);
    expect(done["status"], String(done["error"])).toBe("SUCCESS");
    expect(await readdir(vault())).toEqual([]);
    expect((await databaseBytes(dataDir)).includes(password)).toBe(false);
  });

  it("fails clearly when the sealed credentials cannot be opened after a restart", async () => {
    await running?.server.close();
    running = await serve(dataDir, 0);
    const id = await queueImport(running);
    await running.server.close();
    running = undefined;
    // A different key (a data dir restored without its key file): the sealed file does not open.
    await writeFile(`${vault()}.key`, Buffer.alloc(32, 7));
    running = await serve(dataDir, 5);
    const done = await waitOperation((p) => (running as Running).api(p), id, 60_000);
    expect(done["status"]).toBe("FAILED");
    expect(done["error"]).toBe(CREDENTIALS_LOST);
    expect(await readdir(vault())).toEqual([]);
  });
});
