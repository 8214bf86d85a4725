/**
 * Issue 10 §7: a `Content-Length: 5 GB` request that sends 1 KB is answered with a 413 at once
 * from the header (the upload route and the JSON routes), and `/metrics` is not public: an admin
 * token or the configured metrics token, nobody else.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/tokens.js";
import { startTestServer, type TestServer } from "../harness/in-process.js";
import { startApi, type TestApi } from "./api-harness.js";

const METRICS_TOKEN = "scrape-token-0123456789";

let t: TestServer;
let tenant: string;

beforeAll(async () => {
  t = await startTestServer(
    {},
    { CONTREE_MAX_UPLOAD_BYTES: String(64 * 1024 * 1024), CONTREE_METRICS_TOKEN: METRICS_TOKEN },
  );
  const def = await t.server.store.projects.findByName("default");
  if (!def) throw new Error("no default project");
  tenant = (await issueToken(t.server.store, { projectId: def.id })).secret;
});
afterAll(async () => {
  await t?.close();
});

/**
 * Sends the head and `bodyBytes` of body on a raw socket and returns everything the server
 * answers until it closes the connection. A server that waited for the declared body would never
 * answer (the test would time out).
 */
function rawRequest(head: string, bodyBytes: number): Promise<string> {
  const url = new URL(t.url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname);
    let got = "";
    sock.on("data", (c: Buffer) => {
      got += c.toString("utf8");
    });
    sock.on("error", reject);
    sock.on("close", () => resolve(got));
    sock.write(head);
    sock.write(Buffer.alloc(bodyBytes, 0x61));
  });
}

describe("a body declared larger than the route takes", () => {
  const FIVE_GB = 5 * 1024 * 1024 * 1024;
  it.each([
    ["POST /v1/files", "application/octet-stream"],
    ["POST /v1/instances", "application/json"],
    ["POST /v1/images/import", "application/json"],
  ])("%s with Content-Length 5 GB and 1 KB sent: 413 from the header", async (route, type) => {
    const [method, path] = route.split(" ");
    const answer = await rawRequest(
      `${method} ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${tenant}\r\ncontent-type: ${type}\r\ncontent-length: ${FIVE_GB}\r\n\r\n`,
      1024,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    expect(JSON.parse(body)).toEqual({ error: expect.stringMatching(/exceeds the limit of/), status: 413 });
  });

  it("an upload under the limit still works", async () => {
    const r = await fetch(`${t.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${tenant}`, "content-type": "application/octet-stream" },
      body: "x".repeat(1024),
    });
    expect(r.status).toBe(201);
  });
});

describe("/metrics", () => {
  const scrape = (authorization?: string) =>
    fetch(`${t.url}/metrics`, authorization ? { headers: { authorization } } : {});

  it("refuses anonymous and tenant callers with the error body", async () => {
    const anon = await scrape();
    expect(anon.status).toBe(401);
    expect(await anon.json()).toEqual({ error: expect.any(String), status: 401 });
    const asTenant = await scrape(`Bearer ${tenant}`);
    expect(asTenant.status).toBe(403);
    expect(await asTenant.json()).toEqual({ error: expect.any(String), status: 403 });
    expect((await scrape("Bearer wrong-token-0123456789")).status).toBe(401);
  });

  it("serves the metrics token and admin tokens", async () => {
    const withToken = await scrape(`Bearer ${METRICS_TOKEN}`);
    expect(withToken.status).toBe(200);
    expect(await withToken.text()).toContain("contree_http_requests_total");
    expect((await scrape(`Bearer ${t.token}`)).status).toBe(200);
  });

  it('is public only when the operator says "public"', async () => {
    let api: TestApi | undefined;
    try {
      api = await startApi({ env: { CONTREE_METRICS_TOKEN: "public" } });
      expect((await api.call({ method: "GET", url: "/metrics", token: null })).statusCode).toBe(200);
    } finally {
      await api?.close();
    }
    try {
      api = await startApi();
      expect((await api.call({ method: "GET", url: "/metrics", token: null })).statusCode).toBe(401);
    } finally {
      await api?.close();
    }
  });
});
