import { request } from "node:http";
import { gunzipSync } from "node:zlib";
import { Type } from "@sinclair/typebox";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiApp } from "../../src/api/api-app.js";
import { ADMIN_TOKEN, expectErrorBody, leaks, startApi, type TestApi } from "./api-harness.js";

/** Routes standing in for endpoints with JSON bodies (spawn, import...) that live elsewhere. */
function testRoutes(secretPath: () => string) {
  return async (v1: ApiApp) => {
    v1.post(
      "/test/echo",
      {
        schema: {
          body: Type.Object({
            name: Type.String(),
            count: Type.Integer(),
            tags: Type.Optional(Type.Array(Type.String())),
          }),
        },
      },
      async (req) => ({ got: req.body }),
    );
    v1.delete("/test/thing/:id", async (req) => ({ deleted: (req.params as { id: string }).id }));
    v1.get("/test/boom", async () => {
      throw new Error(`ENOENT: no such file or directory, open '${secretPath()}/content/blobs/x'`);
    });
    v1.get("/test/throw-string", async () => {
      throw `raw string from ${secretPath()}`;
    });
    v1.get("/test/big", async () => ({
      items: Array.from({ length: 2000 }, (_, i) => ({ i, pad: "x".repeat(40) })),
    }));
    v1.get("/test/medium", async () => ({ pad: "y".repeat(5000) }));
  };
}

function rawGet(
  base: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, path, method: "GET", headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HTTP conventions", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startApi({ plugins: [testRoutes(() => api.dataDir)] });
  });
  afterAll(async () => {
    for (const body of api.seen) expect(leaks(body, api.dataDir), body.slice(0, 300)).toEqual([]);
    await api.close();
  });

  describe("JSON bodies", () => {
    const post = (payload: string, type = "application/json") =>
      api.call({ method: "POST", url: "/v1/test/echo", headers: { "content-type": type }, payload });

    it("a valid body is parsed; unknown properties are tolerated", async () => {
      const res = await post(JSON.stringify({ name: "a", count: 2, extra: true }));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ got: { name: "a", count: 2, extra: true } });
    });

    it.each(['{"name": "a",', "{name: 'a'}", "nul", '{"a":1}}', "\u0000"])(
      "malformed JSON %j is 400",
      async (payload) => {
        expect(expectErrorBody(await post(payload), 400).error).toBe("request body is not valid JSON");
      },
    );

    it.each([
      ['{"name": 5, "count": 1}', "name"],
      ['{"name": "a", "count": "3"}', "count"],
      ['{"name": "a", "count": 1.5}', "count"],
      ['{"name": "a", "count": 1, "tags": "x"}', "tags"],
      ['{"name": "a", "count": 1, "tags": [1]}', "tags"],
      ['{"count": 1}', "name"],
      ["[1, 2]", ""],
      ['"just a string"', ""],
      ["null", ""],
    ])("wrong types %s are 400, never coerced", async (payload, field) => {
      const err = expectErrorBody(await post(payload), 400);
      expect(err.error).toMatch(/^body/);
      if (field) expect(err.error).toContain(field);
    });

    it("a body over the JSON limit is 413", async () => {
      const res = await post(JSON.stringify({ name: "x".repeat(17 * 1024 * 1024), count: 1 }));
      expectErrorBody(res, 413);
    });
  });

  describe("Content-Type: application/json without a body", () => {
    it.each([
      ["GET", "/v1/whoami"],
      ["GET", "/v1/files"],
      ["HEAD", "/v1/files"],
      ["DELETE", "/v1/test/thing/42"],
    ] as const)("%s %s is accepted", async (method, url) => {
      for (const extra of [{}, { "content-length": "0" }]) {
        const res = await api.call({
          method,
          url,
          headers: { "content-type": "application/json", ...extra },
        });
        expect(res.statusCode, `${method} ${url} ${JSON.stringify(extra)}: ${res.body}`).toBe(200);
      }
    });

    it("also with a whitespace-only body", async () => {
      const res = await api.call({
        method: "DELETE",
        url: "/v1/test/thing/7",
        headers: { "content-type": "application/json" },
        payload: "  \n",
      });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ deleted: "7" });
    });
  });

  describe("error bodies", () => {
    it("are exactly {error, status} for every kind of failure", async () => {
      expectErrorBody(await api.call({ method: "GET", url: "/v1/whoami", token: null }), 401);
      expectErrorBody(await api.call({ method: "GET", url: "/v1/whoami", project: "no-such" }), 403);
      expectErrorBody(await api.call({ method: "GET", url: "/v1/nothing-here" }), 404);
      expectErrorBody(await api.call({ method: "GET", url: "/nothing" }), 404);
      expectErrorBody(await api.call({ method: "PUT", url: "/v1/whoami" }), 404);
      expectErrorBody(await api.call({ method: "GET", url: "/v1/files?limit=0" }), 400);
      expectErrorBody(await api.call({ method: "GET", url: "/v1/test/boom" }), 500);
    });

    it("an unexpected failure is an opaque 500: no message, path or stack", async () => {
      for (const url of ["/v1/test/boom", "/v1/test/throw-string"]) {
        const res = await api.call({ method: "GET", url });
        expect(res.json()).toEqual({ error: "internal error", status: 500 });
        expect(res.body).not.toContain(api.dataDir);
        expect(res.body).not.toContain("ENOENT");
      }
    });

    it("no response seen so far leaks the data dir or a stack frame", () => {
      expect(api.seen.length).toBeGreaterThan(10);
      for (const body of api.seen) expect(leaks(body, api.dataDir), body.slice(0, 200)).toEqual([]);
    });
  });

  describe("compression and framing", () => {
    let base: string;
    beforeAll(async () => {
      base = await api.listen();
    });

    it("gzips only when the request asks for gzip", async () => {
      const gz = await api.call({
        method: "GET",
        url: "/v1/test/medium",
        headers: { "accept-encoding": "gzip, deflate" },
      });
      expect(gz.headers["content-encoding"]).toBe("gzip");
      expect(JSON.parse(gunzipSync(gz.rawPayload).toString())).toEqual({ pad: "y".repeat(5000) });
      for (const ae of [undefined, "identity", "deflate, br"]) {
        const res = await api.call({
          method: "GET",
          url: "/v1/test/medium",
          headers: ae === undefined ? {} : { "accept-encoding": ae },
        });
        expect(res.headers["content-encoding"], String(ae)).toBeUndefined();
        expect(res.json()).toEqual({ pad: "y".repeat(5000) });
      }
    });

    it("gzip works on a real socket and for lists", async () => {
      const res = await rawGet(base, "/v1/test/big", {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        "accept-encoding": "gzip",
      });
      expect(res.status).toBe(200);
      expect(res.headers["content-encoding"]).toBe("gzip");
      expect((JSON.parse(gunzipSync(res.body).toString()) as { items: unknown[] }).items).toHaveLength(2000);
    });

    it("JSON over 64 KiB without gzip goes out without Content-Length", async () => {
      const res = await rawGet(base, "/v1/test/big", {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        "accept-encoding": "identity",
      });
      expect(res.status).toBe(200);
      expect(res.body.length).toBeGreaterThan(64 * 1024);
      expect(res.headers["content-length"]).toBeUndefined();
      expect(res.headers["transfer-encoding"]).toBe("chunked");
      expect(res.headers["content-type"]).toMatch(/^application\/json/);
      expect((JSON.parse(res.body.toString()) as { items: unknown[] }).items).toHaveLength(2000);
    });

    it("a large file list is framed the same way", async () => {
      const p = await api.store.projects.resolve("default");
      for (let i = 0; i < 600; i++) await api.store.files.upsert(p.id, i.toString(16).padStart(64, "0"), i);
      const res = await rawGet(base, "/v1/files?limit=1000", { authorization: `Bearer ${ADMIN_TOKEN}` });
      expect(res.body.length).toBeGreaterThan(64 * 1024);
      expect(res.headers["content-length"]).toBeUndefined();
      expect((JSON.parse(res.body.toString()) as { files: unknown[] }).files.length).toBeGreaterThanOrEqual(
        600,
      );
    });

    it("small JSON keeps its Content-Length", async () => {
      const res = await rawGet(base, "/v1/whoami", { authorization: `Bearer ${ADMIN_TOKEN}` });
      expect(Number(res.headers["content-length"])).toBe(res.body.length);
    });
  });

  describe("paths", () => {
    it("trailing and duplicate slashes are tolerated", async () => {
      for (const url of ["/v1/whoami/", "//v1//whoami", "/v1/files/", `/v1/files/${"a".repeat(64)}/`]) {
        const res = await api.call({ method: "GET", url });
        expect([200, 404], url).toContain(res.statusCode);
        if (url.includes("a".repeat(64))) expectErrorBody(res, 404);
        else expect(res.statusCode, url).toBe(200);
      }
    });
  });

  describe("OpenAPI document", () => {
    it("is public, OpenAPI 3.1, lists the routes and its schemas compile", async () => {
      const res = await api.call({ method: "GET", url: "/v1/openapi.json", token: null });
      expect(res.statusCode).toBe(200);
      const doc = res.json() as {
        openapi: string;
        info: { title: string; version: string };
        paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
        components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
      };
      expect(doc.openapi).toBe("3.1.0");
      expect(doc.info.title).toBeTruthy();
      expect(doc.info.version).toBeTruthy();
      expect(doc.components?.securitySchemes?.["bearer"]).toEqual({ type: "http", scheme: "bearer" });
      expect(Object.keys(doc.paths["/v1/whoami"] ?? {})).toContain("get");
      expect(Object.keys(doc.paths["/v1/files"] ?? {})).toEqual(expect.arrayContaining(["get", "post"]));
      expect(Object.keys(doc.paths["/v1/files/{sha256}"] ?? {})).toContain("get");
      expect(Object.keys(doc.paths).some((p) => p.includes("openapi.json"))).toBe(false);

      const methods = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);
      for (const [path, item] of Object.entries(doc.paths)) {
        expect(path.startsWith("/"), path).toBe(true);
        for (const [method, op] of Object.entries(item)) {
          if (!methods.has(method)) continue;
          expect(op.responses, `${method} ${path}`).toBeTypeOf("object");
          for (const code of Object.keys(op.responses ?? {}))
            expect(code, `${method} ${path}`).toMatch(/^([1-5]\d\d|[1-5]XX|default)$/);
        }
      }

      // Every $ref resolves inside the document, and every schema is valid JSON Schema 2020-12.
      const text = JSON.stringify(doc);
      for (const m of text.matchAll(/"\$ref":"([^"]+)"/g)) {
        const ref = m[1] as string;
        expect(ref.startsWith("#/"), ref).toBe(true);
        let node: unknown = doc;
        for (const part of ref.slice(2).split("/"))
          node = (node as Record<string, unknown> | undefined)?.[decodeURIComponent(part)];
        expect(node, ref).toBeDefined();
      }
      const ajv = new Ajv2020({ strict: false, validateFormats: false });
      const compileIn = (schema: object) => ajv.compile({ components: doc.components, allOf: [schema] });
      for (const name of Object.keys(doc.components?.schemas ?? {})) {
        expect(() => compileIn({ $ref: `#/components/schemas/${name}` }), name).not.toThrow();
      }
      // @fastify/swagger names shared schemas def-N unless told otherwise; find File by its title.
      const fileName = Object.entries(doc.components?.schemas ?? {}).find(
        ([, v]) => (v as { title?: string }).title === "File",
      )?.[0];
      expect(fileName).toBeDefined();
      const fileValid = compileIn({ $ref: `#/components/schemas/${fileName}` });
      expect(fileValid({ uuid: "u", sha256: "s", size: 1, created_at: "t", updated_at: "t" })).toBe(true);
      expect(fileValid({ uuid: "u" })).toBe(false);
      let checked = 0;
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(item)) {
          for (const [code, resp] of Object.entries(op.responses ?? {})) {
            const content = (resp as { content?: Record<string, { schema?: object }> }).content ?? {};
            for (const media of Object.values(content)) {
              if (!media.schema) continue;
              expect(() => compileIn(media.schema as object), `${method} ${path} ${code}`).not.toThrow();
              checked++;
            }
          }
        }
      }
      expect(checked).toBeGreaterThan(5);
    });
  });

  describe("metrics", () => {
    it("GET /metrics (admin token) counts requests by method, route and status", async () => {
      const scrape = async () => (await api.call({ method: "GET", url: "/metrics" })).body;
      const count = (text: string, line: string) => {
        const m = text.split("\n").find((l) => l.startsWith(line));
        return m ? Number(m.slice(line.length).trim()) : 0;
      };
      const key = 'contree_http_requests_total{method="GET",route="/v1/whoami",status="200"}';
      const before = count(await scrape(), key);
      for (let i = 0; i < 3; i++) await api.call({ method: "GET", url: "/v1/whoami" });
      await api.call({ method: "GET", url: "/v1/whoami", token: "bad-token-xyz" });
      const res = await api.call({ method: "GET", url: "/metrics" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^text\/plain/);
      expect(count(res.body, key)).toBe(before + 3);
      expect(
        count(res.body, 'contree_http_requests_total{method="GET",route="/v1/whoami",status="401"}'),
      ).toBeGreaterThanOrEqual(1);
      expect(count(res.body, 'contree_http_errors_total{kind="unauthenticated"}')).toBeGreaterThanOrEqual(1);
      expect(res.body).toContain("# TYPE contree_http_request_duration_seconds histogram");
    });
  });
});

describe("mounted under a path prefix", () => {
  for (const how of ["flag", "env"] as const) {
    describe(`via ${how}`, () => {
      let api: TestApi;
      beforeAll(async () => {
        api = await startApi(
          how === "flag"
            ? { flags: { pathPrefix: "/sandboxes/" } }
            : { env: { CONTREE_PATH_PREFIX: "/sandboxes" } },
        );
      });
      afterAll(async () => {
        await api.close();
      });

      it("serves the API under <prefix>/v1, with or without trailing slashes", async () => {
        expect(api.config.pathPrefix).toBe("/sandboxes");
        for (const url of [
          "/sandboxes/v1/whoami",
          "/sandboxes/v1/whoami/",
          "/sandboxes/v1/files",
          "/sandboxes/v1/files/",
        ]) {
          const res = await api.call({ method: "GET", url });
          expect(res.statusCode, url).toBe(200);
        }
        const up = await api.call({ method: "POST", url: "/sandboxes/v1/files", payload: "prefixed" });
        expect(up.statusCode).toBe(201);
        const sha = (up.json() as { sha256: string }).sha256;
        expect((await api.call({ method: "GET", url: `/sandboxes/v1/files/${sha}` })).statusCode).toBe(200);
        expect(
          (await api.call({ method: "HEAD", url: `/sandboxes/v1/files?sha256=${sha}` })).statusCode,
        ).toBe(200);
        expectErrorBody(await api.call({ method: "GET", url: "/sandboxes/v1/whoami", token: null }), 401);
      });

      it("metrics and the OpenAPI document follow the prefix", async () => {
        expect((await api.call({ method: "GET", url: "/sandboxes/metrics" })).statusCode).toBe(200);
        expectErrorBody(await api.call({ method: "GET", url: "/sandboxes/metrics", token: null }), 401);
        const doc = (
          await api.call({ method: "GET", url: "/sandboxes/v1/openapi.json", token: null })
        ).json() as {
          paths: Record<string, unknown>;
        };
        expect(Object.keys(doc.paths)).toContain("/sandboxes/v1/whoami");
      });

      it("paths outside the prefix are JSON 404s", async () => {
        expectErrorBody(await api.call({ method: "GET", url: "/v1/whoamix" }), 404);
        expectErrorBody(await api.call({ method: "GET", url: "/sandbox/v1/whoami" }), 404);
      });
    });
  }
});
