/**
 * In-process API under test: the same dependency graph `createServer` builds (SQLite metadata,
 * local content store, bootstrap, metrics), over a fresh temp data dir, with optional extra
 * route plugins. Requests go through `app.inject`, or a real socket via `listen()`.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { buildApp } from "../../src/api/app.js";
import { filesRoutes } from "../../src/api/routes/files.js";
import { whoamiRoutes } from "../../src/api/routes/whoami.js";
import type { RouteModule, Services } from "../../src/api/services.js";
import { bootstrap } from "../../src/auth/bootstrap.js";
import { authenticate } from "../../src/auth/principal.js";
import { issueToken } from "../../src/auth/tokens.js";
import type { Config } from "../../src/config/config.js";
import { type ConfigFlags, loadConfig } from "../../src/config/load-config.js";
import { LocalContentStore } from "../../src/content/local/local-content-store.js";
import { FileService } from "../../src/files/file-service.js";
import { ImageService } from "../../src/images/image-service.js";
import { dataLayout } from "../../src/main.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";
import { operationStats } from "../../src/metadata/repos/operation-stats.js";
import { PERMISSIONS, type Permissions } from "../../src/metadata/repos/token-repo.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { createLogger } from "../../src/observability/logger.js";
import { MetricsRegistry } from "../../src/observability/metrics.js";

export const ADMIN_TOKEN = "admin-token-for-tests-0123456789";

export interface IssuedTestToken {
  secret: string;
  id: string;
  projectId: string;
}

export interface TestApi {
  app: FastifyInstance;
  config: Config;
  dataDir: string;
  store: MetadataStore;
  content: LocalContentStore;
  /** Every response body seen by `call`, to check none leaks a path or stack trace. */
  seen: string[];
  /** A token for `project` (created when missing). */
  token(
    project: string,
    o?: { admin?: boolean; permissions?: Partial<Permissions>; expiresAt?: number | null },
  ): Promise<IssuedTestToken>;
  call(o: InjectOptions & { token?: string | null; project?: string }): Promise<LightMyRequestResponse>;
  /** Listens on 127.0.0.1 (ephemeral port) and returns the base URL. */
  listen(): Promise<string>;
  /** Names left in the content store's ingest dir and blobs dir. */
  contentFiles(): Promise<{ ingest: string[]; blobs: string[] }>;
  close(): Promise<void>;
}

export async function startApi(
  o: {
    flags?: ConfigFlags;
    env?: Record<string, string>;
    /** Extra plugins under `/v1` besides whoami and files. */
    plugins?: readonly ReturnType<RouteModule>[];
  } = {},
): Promise<TestApi> {
  const dataDir = await mkdtemp(join(tmpdir(), "contree-api-"));
  const config = loadConfig(
    { dataDir, listen: "127.0.0.1:0", logLevel: "silent", ...o.flags },
    { CONTREE_BOOTSTRAP_TOKEN: ADMIN_TOKEN, ...o.env },
  );
  const layout = dataLayout(dataDir);
  const store = SqliteMetadataStore.open(layout.database);
  const content = await LocalContentStore.open(layout.content);
  await content.reclaim();
  await bootstrap(store, config.bootstrapToken);
  const built: Partial<Services> = {
    config,
    logger: createLogger(config.logLevel),
    metrics: new MetricsRegistry(),
    auth: { authenticate: (header, project) => authenticate(store, header, project) },
    files: new FileService(store, content, config.maxUploadBytes),
    images: new ImageService(store),
    operations: {
      get: (id, projectId) => store.operations.get(id, projectId),
      list: (projectId, filter) => store.operations.list(projectId, filter),
      stats: (projectId) => operationStats(store.db, projectId),
      cancel: () => Promise.reject(new Error("the API harness runs no operations")),
    },
  };
  const app = await buildApp(harnessServices(built), [
    whoamiRoutes,
    filesRoutes,
    ...(o.plugins ?? []).map((plugin) => () => plugin),
  ]);
  await app.ready();
  const seen: string[] = [];
  let closed = false;

  const api: TestApi = {
    app,
    config,
    dataDir,
    store,
    content,
    seen,
    async token(project, t = {}) {
      const p = (await store.projects.findByName(project)) ?? (await store.projects.create(project));
      const permissions = Object.fromEntries(
        PERMISSIONS.map((k) => [k, t.permissions?.[k] ?? true]),
      ) as Permissions;
      const issued = await issueToken(store, {
        projectId: p.id,
        admin: t.admin ?? false,
        permissions,
        expiresAt: t.expiresAt ?? null,
      });
      return { secret: issued.secret, id: issued.record.id, projectId: p.id };
    },
    async call({ token, project, headers, ...rest }) {
      const h: Record<string, string> = { ...(headers as Record<string, string> | undefined) };
      const tok = token === undefined ? ADMIN_TOKEN : token;
      if (tok !== null) h["authorization"] = `Bearer ${tok}`;
      if (project !== undefined) h["project"] = project;
      const res = await app.inject({ ...rest, headers: h });
      seen.push(res.body);
      return res;
    },
    async listen() {
      return app.listen({ host: "127.0.0.1", port: 0 });
    },
    async contentFiles() {
      const root = layout.content;
      return {
        ingest: await readdir(join(root, "ingest")),
        blobs: await readdir(join(root, "blobs", "sha256")),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return api;
}

/**
 * The services the harness builds; a route reaching one it does not (runtime, queue, inspect)
 * fails loudly instead of seeing undefined. `storage` and `mcp` are optional: no disk guard, no /mcp here;
 * `uiDir` too (the console from the package's build).
 */
function harnessServices(built: Partial<Services>): Services {
  return new Proxy(built, {
    get(target, key) {
      if (key in target || key === "storage" || key === "mcp" || key === "uiDir")
        return Reflect.get(target, key);
      throw new Error(`service ${String(key)} is not built by the API harness`);
    },
  }) as Services;
}

/** Error bodies are exactly `{error: string, status: number}` with the HTTP status. */
export function expectErrorBody(
  res: LightMyRequestResponse,
  status: number,
): { error: string; status: number } {
  if (res.statusCode !== status) throw new Error(`expected ${status}, got ${res.statusCode}: ${res.body}`);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  const keys = Object.keys(body).sort();
  if (keys.join(",") !== "error,status" || typeof body["error"] !== "string" || body["status"] !== status) {
    throw new Error(`not an error body for ${status}: ${res.body}`);
  }
  if (!String(res.headers["content-type"]).startsWith("application/json")) {
    throw new Error(`error content-type ${String(res.headers["content-type"])}`);
  }
  return body as { error: string; status: number };
}

/** Nothing a client sees may reveal host paths or stack frames. */
export function leaks(body: string, dataDir: string): string[] {
  const found: string[] = [];
  if (body.includes(dataDir)) found.push("data dir path");
  if (/\bat [\w.<>]+ \(/.test(body) || /\n\s+at /.test(body)) found.push("stack frame");
  if (/\/(work|tmp|home|root|usr|var\/lib)\//.test(body)) found.push("host path");
  if (/node_modules|\.ts:\d+/.test(body)) found.push("source location");
  return found;
}
