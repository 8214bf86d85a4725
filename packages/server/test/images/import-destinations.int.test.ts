/**
 * Issue 10 §4 through the real server: a tenant with an ordinary token uses imports to probe the
 * server's own network. Every refused destination must fail with byte-for-byte the error of a
 * closed port, and make no connection at all (listeners count them). Only the operator's allow
 * list (CONTREE_PRIVATE_REGISTRIES) opens a destination. Private and link-local targets live in
 * a network namespace made by the test.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/tokens.js";
import { UNREACHABLE } from "../../src/registry/retry.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer } from "../harness/in-process.js";
import { type NetnsTarget, startNetnsTarget } from "../harness/netns-target.js";
import {
  freePort,
  REGISTRY_PASSWORD,
  REGISTRY_USER,
  type RegistryHandle,
  startRegistry,
} from "../harness/registry.js";

interface Counter {
  port: number;
  count: number;
  server: TcpServer;
}

async function counter(host: string): Promise<Counter> {
  const c: Counter = { port: 0, count: 0, server: createTcpServer() };
  c.server.on("connection", (s) => {
    c.count++;
    s.on("error", () => {});
    s.once("data", () => s.end("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"));
  });
  await new Promise<void>((r) => c.server.listen(0, host, r));
  const addr = c.server.address();
  c.port = typeof addr === "object" && addr ? addr.port : 0;
  return c;
}

let t: TestServer;
let tenant: string;
let net: NetnsTarget;
let reg: RegistryHandle;
let v4: Counter;
let v6: Counter;
let front: { host: string; server: HttpServer; answer: (path: string) => [number, Record<string, string>] };
const apiPort = () => Number(new URL(t.url).port);

beforeAll(async () => {
  reg = await startRegistry({ auth: "token", seedFrom: (await fixtures()).registryData });
  net = await startNetnsTarget();
  v4 = await counter("127.0.0.1");
  v6 = await counter("::1");
  const f = {
    host: "",
    answer: (_: string): [number, Record<string, string>] => [404, {}],
    server: createHttpServer((req, res) => {
      const [status, headers] = f.answer(req.url ?? "/");
      res.writeHead(status, { connection: "close", "content-length": "0", ...headers }).end();
    }),
  };
  await new Promise<void>((r) => f.server.listen(0, "127.0.0.2", r));
  const addr = f.server.address();
  f.host = `127.0.0.2:${typeof addr === "object" && addr ? addr.port : 0}`;
  front = f;
  // The operator allows exactly two registries: a "public-looking" one (front) and the real one.
  t = await startTestServer(
    {},
    {
      CONTREE_PRIVATE_REGISTRIES: `${front.host},${reg.host}`,
      CONTREE_IMAGES_IMPORT_MAX_CONCURRENCY: "32",
    },
  );
  const project = await t.server.store.projects.create("tenant");
  tenant = (await issueToken(t.server.store, { projectId: project.id })).secret;
});
afterAll(async () => {
  await t?.close();
  for (const s of [v4?.server, v6?.server, front?.server]) if (s) await new Promise((r) => s.close(r));
  await net?.stop();
  await reg?.stop();
});

/** Imports as the tenant; returns the operation's status and error. */
async function importAs(url: string, credentials?: { username: string; password: string }) {
  const r = await fetch(`${t.url}/v1/images/import`, {
    method: "POST",
    headers: { authorization: `Bearer ${tenant}`, "content-type": "application/json" },
    body: JSON.stringify({ registry: { url, ...(credentials ? { credentials } : {}) } }),
  });
  expect(r.status).toBe(202);
  const { uuid } = (await r.json()) as { uuid: string };
  for (;;) {
    const res = await fetch(`${t.url}/v1/operations/${uuid}`, {
      headers: { authorization: `Bearer ${tenant}` },
    });
    const op = (await res.json()) as Record<string, unknown>;
    if (["SUCCESS", "FAILED", "CANCELLED"].includes(String(op["status"])))
      return { status: op["status"], error: op["error"] };
    await new Promise((r) => setTimeout(r, 50));
  }
}

const REFUSED = { status: "FAILED", error: UNREACHABLE };

describe("a tenant cannot probe the server's own network through imports", () => {
  it("open and closed loopback ports (the API's own port too) give the same error and no connection", async () => {
    const closed4 = await freePort();
    const closed6 = await freePort("::1");
    const refs = [
      `docker://127.0.0.1:${v4.port}/x`,
      `docker://127.0.0.1:${closed4}/x`,
      `docker://127.0.0.1:${apiPort()}/x`,
      `docker://[::1]:${v6.port}/x`,
      `docker://[::1]:${closed6}/x`,
      `docker://localhost:${v4.port}/x`,
      `docker://localhost:${closed4}/x`,
      `docker://0.0.0.0:${v4.port}/x`,
      `docker://[::ffff:127.0.0.1]:${v4.port}/x`,
      `docker://0x7f000001:${v4.port}/x`,
      `docker://127.0.0.3:${v4.port}/x`,
    ];
    const results = await Promise.all(refs.map((u) => importAs(u)));
    results.forEach((r, i) => {
      expect(r, refs[i]).toEqual(REFUSED);
    });
    expect(v4.count + v6.count).toBe(0);
  });

  it("private, link-local and unique-local addresses are refused before connecting (http and https)", async () => {
    const refs = [
      `docker://${net.v4}:${net.port}/x`,
      `docker://${net.v4}:${net.tlsPort}/x`,
      `docker://${net.linkLocal}:${net.port}/x`,
      `docker://${net.linkLocal}:${net.tlsPort}/x`,
      `docker://[${net.v6}]:${net.tlsPort}/x`,
      `docker://[::ffff:${net.linkLocal}]:${net.tlsPort}/x`,
    ];
    const results = await Promise.all(refs.map((u) => importAs(u)));
    results.forEach((r, i) => {
      expect(r, refs[i]).toEqual(REFUSED);
    });
    expect(await net.connections()).toBe(0);
  });

  it("an allowed registry that redirects to loopback fails like a closed port", async () => {
    const closed = await freePort();
    const errors: unknown[] = [];
    for (const to of [
      `http://127.0.0.1:${v4.port}`,
      `http://127.0.0.1:${closed}`,
      `https://[::1]:${v6.port}`,
    ]) {
      front.answer = (path) => [307, { location: `${to}${path}` }];
      errors.push(await importAs(`docker://${front.host}/x`));
    }
    expect(errors).toEqual([REFUSED, REFUSED, REFUSED]);
    expect(v4.count + v6.count).toBe(0);
  });

  it("an allowed registry whose token realm is on loopback fails like a closed port", async () => {
    const closed = await freePort();
    const errors: unknown[] = [];
    for (const realm of [`http://127.0.0.1:${v4.port}/token`, `http://127.0.0.1:${closed}/token`]) {
      front.answer = () => [401, { "www-authenticate": `Bearer realm="${realm}",service="x"` }];
      errors.push(await importAs(`docker://${front.host}/x`));
    }
    expect(errors).toEqual([REFUSED, REFUSED]);
    expect(v4.count).toBe(0);
  });

  it("the real registry is allowed, its token service (another loopback port) is not", async () => {
    const credentials = { username: REGISTRY_USER, password: REGISTRY_PASSWORD };
    expect(await importAs(`docker://${reg.host}/${FIXTURE_IMAGES.busybox}`, credentials)).toEqual(REFUSED);
  });

  it("the allowed registry itself is reached (the refusals above are the policy, not the network)", async () => {
    front.answer = () => [404, {}];
    const r = await importAs(`docker://${front.host}/x`);
    expect(r.status).toBe("FAILED");
    expect(String(r.error)).toMatch(/^manifest unknown/);
  });
});
