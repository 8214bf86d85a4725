import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../../src/config/config.js";
import { loadConfig } from "../../src/config/load-config.js";
import { createServer, type Server } from "../../src/main.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";

export interface TestServer {
  server: Server;
  config: Config;
  /** http://127.0.0.1:PORT (listening) */
  url: string;
  token: string;
  dataDir: string;
  /** fetch against the API with the admin token. */
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

/**
 * The test registries (test/harness/registry.ts) listen on 127.0.0.1, which the server refuses
 * to import from unless told: test servers allow it explicitly. Attack tests pass
 * `{ CONTREE_PRIVATE_REGISTRIES: "" }` (or a narrower list) to get the production default.
 */
export const TEST_PRIVATE_REGISTRIES = "127.0.0.0/8";

/** A real server (same graph as the daemon) in this process, on a free loopback port. */
export async function startTestServer(
  overrides: Partial<Config> = {},
  env: NodeJS.ProcessEnv = {},
  logger?: Logger,
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "contree-test-"));
  const token = "test-admin-token";
  const config = {
    ...loadConfig(
      { dataDir, listen: "127.0.0.1:0" },
      {
        CONTREE_BOOTSTRAP_TOKEN: token,
        CONTREE_PRIVATE_REGISTRIES: TEST_PRIVATE_REGISTRIES,
        ...env,
      },
    ),
    ...overrides,
  };
  const server = await createServer(
    config,
    logger ?? createLogger((process.env["TEST_LOG_LEVEL"] as "info" | undefined) ?? "silent"),
  );
  const url = await server.app.listen({ host: "127.0.0.1", port: 0 });
  return {
    server,
    config,
    url,
    token,
    dataDir,
    api(path, init = {}) {
      const { json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
      if (json !== undefined) headers.set("content-type", "application/json");
      return fetch(`${url}${config.pathPrefix}${path}`, {
        ...rest,
        headers,
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
      });
    },
    async close() {
      await server.close();
      // Async: fs.rmSync recurses on the JS stack and overflows on trees thousands of levels deep.
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Who can GET an API path: a test server, a tenant, or a bare fetch helper. */
export type ApiGetter = { api(path: string): Promise<Response> } | ((path: string) => Promise<Response>);

/** Polls an operation until it is terminal; returns its document. */
export async function waitOperation(
  api: ApiGetter,
  id: string,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  const get = typeof api === "function" ? api : (path: string) => api.api(path);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await get(`/v1/operations/${id}`);
    const doc = (await r.json()) as Record<string, unknown>;
    if (["SUCCESS", "FAILED", "CANCELLED"].includes(String(doc["status"]))) return doc;
    if (Date.now() > until)
      throw new Error(`operation ${id} still ${String(doc["status"])} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
