import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isUuid } from "../../src/core/ids.js";
import { ADMIN_TOKEN, expectErrorBody, leaks, startApi, type TestApi } from "./api-harness.js";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const ISO6 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

interface FileJson {
  uuid: string;
  sha256: string;
  size: number;
  created_at: string;
  updated_at: string;
}

/** Raw HTTP upload with Transfer-Encoding: chunked, as the CLI's http.client does. */
function chunkedUpload(
  base: string,
  chunks: Buffer[],
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${base}/v1/files`);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          "content-type": "application/octet-stream",
          "transfer-encoding": "chunked",
          ...headers,
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(parts).toString(),
            headers: res.headers,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    (async () => {
      for (const c of chunks) {
        if (!req.write(c)) await new Promise((r) => req.once("drain", r));
      }
      req.end();
    })().catch(reject);
  });
}

describe("files API", () => {
  let api: TestApi;
  let base: string;
  beforeAll(async () => {
    api = await startApi({ env: { CONTREE_MAX_UPLOAD_BYTES: String(4 * 1024 * 1024) } });
    base = await api.listen();
  });
  afterAll(async () => {
    for (const body of api.seen) expect(leaks(body, api.dataDir), body).toEqual([]);
    await api.close();
  });

  describe("POST /v1/files", () => {
    it("accepts a body with Content-Length: 201 FileResponse, blob stored under its digest", async () => {
      const data = randomBytes(100_000);
      const res = await api.call({
        method: "POST",
        url: "/v1/files",
        payload: data,
        headers: { "content-type": "application/octet-stream" },
      });
      expect(res.statusCode).toBe(201);
      const f = res.json() as FileJson;
      expect(Object.keys(f).sort()).toEqual(["created_at", "sha256", "size", "updated_at", "uuid"]);
      expect(f.sha256).toBe(sha(data));
      expect(f.size).toBe(data.length);
      expect(isUuid(f.uuid)).toBe(true);
      expect(f.created_at).toMatch(ISO6);
      expect(f.updated_at).toMatch(ISO6);
      expect((await api.contentFiles()).blobs).toContain(sha(data));
    });

    it("accepts a chunked body without Content-Length over a real socket", async () => {
      const chunks = Array.from({ length: 40 }, () => randomBytes(32 * 1024 + 3));
      const all = Buffer.concat(chunks);
      const res = await chunkedUpload(base, chunks);
      expect(res.status).toBe(201);
      expect(JSON.parse(res.body)).toMatchObject({ sha256: sha(all), size: all.length });
    });

    it("accepts a streamed fetch body (duplex half)", async () => {
      const data = randomBytes(777_777);
      const res = await fetch(`${base}/v1/files`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/octet-stream" },
        body: Readable.toWeb(Readable.from([data.subarray(0, 1000), data.subarray(1000)])) as ReadableStream,
        duplex: "half",
      } as RequestInit);
      expect(res.status).toBe(201);
      expect(((await res.json()) as FileJson).sha256).toBe(sha(data));
    });

    it("accepts an empty body (with and without Content-Length, with and without a type)", async () => {
      const empty = sha("");
      for (const headers of [{ "content-type": "application/octet-stream" }, {}, { "content-length": "0" }]) {
        const res = await api.call({ method: "POST", url: "/v1/files", headers, payload: "" });
        expect(res.statusCode, JSON.stringify(headers)).toBe(201);
        expect(res.json()).toMatchObject({ sha256: empty, size: 0 });
      }
      const chunked = await chunkedUpload(base, []);
      expect(chunked.status).toBe(201);
      expect(JSON.parse(chunked.body)).toMatchObject({ sha256: empty, size: 0 });
    });

    it("takes the raw bytes whatever the Content-Type says", async () => {
      for (const type of ["text/plain", "application/x-tar", "image/png; charset=binary"]) {
        const data = Buffer.from(`{"not": "parsed", "type": "${type}"}`);
        const res = await api.call({
          method: "POST",
          url: "/v1/files",
          headers: { "content-type": type },
          payload: data,
        });
        expect(res.statusCode, `${type}: ${res.body}`).toBe(201);
        expect(res.json()).toMatchObject({ sha256: sha(data), size: data.length });
      }
    });

    // MCP sends `Content-Type: application/json` on every request (contree-api.md 1.4). An upload
    // so labelled must still be stored byte for byte, never parsed (and never a 500).
    it("stores the raw bytes of an upload labelled application/json", async () => {
      for (const data of [Buffer.from('{"a": 1}'), Buffer.from("not json at all"), randomBytes(1000)]) {
        const res = await api.call({
          method: "POST",
          url: "/v1/files",
          headers: { "content-type": "application/json" },
          payload: data,
        });
        expect(res.statusCode, res.body).toBe(201);
        expect(res.json()).toMatchObject({ sha256: sha(data), size: data.length });
      }
    });

    it("dedupes identical bytes within a project: same uuid and created_at", async () => {
      const data = randomBytes(5000);
      const a = (await api.call({ method: "POST", url: "/v1/files", payload: data })).json() as FileJson;
      await new Promise((r) => setTimeout(r, 5));
      const b = await api.call({ method: "POST", url: "/v1/files", payload: data });
      expect(b.statusCode).toBeGreaterThanOrEqual(200);
      expect(b.statusCode).toBeLessThan(300);
      const bj = b.json() as FileJson;
      expect(bj.uuid).toBe(a.uuid);
      expect(bj.created_at).toBe(a.created_at);
      expect(bj.updated_at >= a.updated_at).toBe(true);
      const listed = (await api.call({ method: "GET", url: "/v1/files?limit=1000" })).json() as {
        files: FileJson[];
      };
      expect(listed.files.filter((f) => f.sha256 === sha(data))).toHaveLength(1);
    });

    it("concurrent uploads of the same bytes give one record", async () => {
      const data = randomBytes(200_000);
      const results = await Promise.all(
        Array.from({ length: 6 }, () => api.call({ method: "POST", url: "/v1/files", payload: data })),
      );
      expect(new Set(results.map((r) => (r.json() as FileJson).uuid)).size).toBe(1);
      expect((await api.contentFiles()).ingest).toEqual([]);
    });

    it("an oversized upload is 413 and leaves nothing: no blob, no temp file, no record", async () => {
      const before = await api.contentFiles();
      const data = randomBytes(4 * 1024 * 1024 + 1);
      const res = await api.call({ method: "POST", url: "/v1/files", payload: data });
      expect(expectErrorBody(res, 413).error).toMatch(/exceeds the limit of 4194304 bytes/);
      const chunks = Array.from({ length: 100 }, () => randomBytes(64 * 1024));
      const chunked = await chunkedUpload(base, chunks);
      expect(chunked.status).toBe(413);
      expect(JSON.parse(chunked.body)).toEqual({
        error: "upload exceeds the limit of 4194304 bytes",
        status: 413,
      });
      const after = await api.contentFiles();
      expect(after.ingest).toEqual([]);
      expect(after.blobs.sort()).toEqual(before.blobs.sort());
      expect(after.blobs).not.toContain(sha(data));
      expect((await api.call({ method: "GET", url: `/v1/files/${sha(data)}` })).statusCode).toBe(404);
      // The server is still fine afterwards.
      expect((await api.call({ method: "POST", url: "/v1/files", payload: "ok" })).statusCode).toBe(201);
    });

    it("exactly the limit is accepted", async () => {
      const data = randomBytes(4 * 1024 * 1024);
      const res = await api.call({ method: "POST", url: "/v1/files", payload: data });
      expect(res.statusCode).toBe(201);
    });

    it("a client that disconnects mid-upload leaves no temp file", async () => {
      const u = new URL(`${base}/v1/files`);
      await new Promise<void>((resolve) => {
        const req = request({
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: "POST",
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "transfer-encoding": "chunked" },
        });
        req.on("error", () => resolve());
        req.write(randomBytes(256 * 1024));
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 100);
      });
      const deadline = Date.now() + 5000;
      while ((await api.contentFiles()).ingest.length > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect((await api.contentFiles()).ingest).toEqual([]);
    });
  });

  describe("lookups", () => {
    let f: FileJson;
    beforeAll(async () => {
      f = (await api.call({ method: "POST", url: "/v1/files", payload: "lookup me" })).json() as FileJson;
    });

    it("GET /v1/files/{sha256} returns the File; HEAD answers 200 without a body", async () => {
      const res = await api.call({ method: "GET", url: `/v1/files/${f.sha256}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(f);
      const head = await api.call({ method: "HEAD", url: `/v1/files/${f.sha256}` });
      expect(head.statusCode).toBe(200);
      expect(head.body).toBe("");
    });

    it("uppercase and sha256:-prefixed digests are accepted", async () => {
      expect((await api.call({ method: "GET", url: `/v1/files/${f.sha256.toUpperCase()}` })).json()).toEqual(
        f,
      );
      expect((await api.call({ method: "GET", url: `/v1/files/sha256:${f.sha256}` })).json()).toEqual(f);
    });

    it("an unknown digest is 404 for GET and HEAD", async () => {
      const absent = sha("absent");
      expectErrorBody(await api.call({ method: "GET", url: `/v1/files/${absent}` }), 404);
      const head = await api.call({ method: "HEAD", url: `/v1/files/${absent}` });
      expect(head.statusCode).toBe(404);
      expect(head.body).toBe("");
    });

    it("legacy GET ?sha256= answers the single object or 404", async () => {
      const res = await api.call({ method: "GET", url: `/v1/files?sha256=${f.sha256}` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(f);
      expectErrorBody(await api.call({ method: "GET", url: `/v1/files?sha256=${sha("nope")}` }), 404);
    });

    it("legacy HEAD ?sha256= and ?uuid= answer 200/404; GET ?uuid= answers the object", async () => {
      expect((await api.call({ method: "HEAD", url: `/v1/files?sha256=${f.sha256}` })).statusCode).toBe(200);
      expect((await api.call({ method: "HEAD", url: `/v1/files?sha256=${sha("nope")}` })).statusCode).toBe(
        404,
      );
      expect((await api.call({ method: "HEAD", url: `/v1/files?uuid=${f.uuid}` })).statusCode).toBe(200);
      expect(
        (await api.call({ method: "HEAD", url: "/v1/files?uuid=00000000-0000-4000-8000-000000000000" }))
          .statusCode,
      ).toBe(404);
      expect((await api.call({ method: "GET", url: `/v1/files?uuid=${f.uuid}` })).json()).toEqual(f);
      expect(
        (await api.call({ method: "GET", url: `/v1/files?uuid=${f.uuid.toUpperCase()}` })).json(),
      ).toEqual(f);
    });

    it.each([
      ["/v1/files/abc"],
      [`/v1/files/${"a".repeat(63)}`],
      [`/v1/files/${"a".repeat(65)}`],
      [`/v1/files/${"g".repeat(64)}`],
      [`/v1/files/sha512:${"a".repeat(64)}`],
      [`/v1/files/..%2F..%2Fetc%2Fpasswd`],
      ["/v1/files?sha256=zz"],
      ["/v1/files?sha256="],
      ["/v1/files?uuid=not-a-uuid"],
      ["/v1/files?uuid="],
    ])("an invalid digest or uuid is 400: %s", async (url) => {
      const res = await api.call({ method: "GET", url });
      expectErrorBody(res, 400);
      expect((await api.call({ method: "HEAD", url })).statusCode).toBe(400);
    });
  });

  describe("GET /v1/files listing", () => {
    let projectToken: string;
    let ids: string[];
    const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);
    beforeAll(async () => {
      const t = await api.token("listing");
      projectToken = t.secret;
      ids = [];
      for (let i = 0; i < 25; i++) {
        const { file } = await api.store.files.upsert(t.projectId, sha(`list-${i}`), i, T0 + i * 60_000);
        ids.push(file.id);
      }
    });
    const list = async (q: string) => {
      const res = await api.call({ method: "GET", url: `/v1/files${q}`, token: projectToken });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { files: FileJson[] }).files.map((f) => f.uuid);
    };

    it("is an object {files: [...]} newest first, default limit 100", async () => {
      const res = await api.call({ method: "GET", url: "/v1/files", token: projectToken });
      const body = res.json() as { files: FileJson[] };
      expect(Object.keys(body)).toEqual(["files"]);
      expect(body.files.map((f) => f.uuid)).toEqual([...ids].reverse());
      expect(body.files[0]).toMatchObject({
        sha256: sha("list-24"),
        size: 24,
        created_at: "2026-01-01T00:24:00.000000Z",
      });
    });

    it("pages with limit and offset; offsets past the end are an empty page", async () => {
      const all = [...ids].reverse();
      expect(await list("?limit=10")).toEqual(all.slice(0, 10));
      expect(await list("?limit=10&offset=10")).toEqual(all.slice(10, 20));
      expect(await list("?limit=10&offset=20")).toEqual(all.slice(20));
      expect(await list("?limit=1000&offset=1000")).toEqual([]);
      expect(await list("?limit=1&offset=24")).toEqual([all[24]]);
      expect(await list("?limit=1000")).toEqual(all);
      expect(await list("?limit=1")).toEqual([all[0]]);
    });

    it.each(["0", "1001", "-1"])('limit=%s is 400 "limit must be between 1 and 1000"', async (limit) => {
      const res = await api.call({ method: "GET", url: `/v1/files?limit=${limit}`, token: projectToken });
      expect(expectErrorBody(res, 400).error).toBe("limit must be between 1 and 1000");
    });

    it.each(["limit=abc", "limit=1.5", "offset=-1", "offset=x", "since=yesterday", "until=15x"])(
      "%s is 400",
      async (q) => {
        expectErrorBody(await api.call({ method: "GET", url: `/v1/files?${q}`, token: projectToken }), 400);
      },
    );

    it("since/until filter on created_at, inclusive, in every wire form", async () => {
      const rev = [...ids].reverse();
      expect(await list("?since=2026-01-01T00:20:00Z")).toEqual(rev.slice(0, 5));
      expect(await list("?until=2026-01-01T00:02:00Z")).toEqual(rev.slice(22));
      expect(await list("?since=2026-01-01T00:10:00.000000Z&until=2026-01-01T00:12:00Z")).toEqual(
        rev.slice(12, 15),
      );
      expect(await list(`?since=${encodeURIComponent("2026-01-01T01:20:00+01:00")}`)).toEqual(
        rev.slice(0, 5),
      );
      expect(await list("?since=2026-01-01T01%3A20%3A00%2B01%3A00")).toEqual(rev.slice(0, 5));
      expect(await list("?since=2026-01-01T00:20:00.000000+00:00".replace("+", "%2B"))).toEqual(
        rev.slice(0, 5),
      );
      // Relative forms: every record is older than an hour, none is older than the limit below.
      expect(await list("?since=1h")).toEqual([]);
      expect(await list("?since=3600")).toEqual([]);
      expect(await list("?since=15m")).toEqual([]);
      expect(await list("?until=3600s")).toEqual(rev);
      expect(await list("?until=1w")).toEqual(rev);
      const sinceEpoch = Math.ceil((Date.now() - T0) / 1000) + 60;
      expect(await list(`?since=${sinceEpoch}`)).toEqual(rev);
      expect(await list(`?since=&until=`)).toEqual(rev);
    });

    it("new uploads appear first", async () => {
      const res = await api.call({
        method: "POST",
        url: "/v1/files",
        payload: "newest",
        token: projectToken,
      });
      const f = res.json() as FileJson;
      expect((await list("?limit=1"))[0]).toBe(f.uuid);
    });
  });

  describe("project isolation", () => {
    it("a file uploaded in project A is invisible in project B", async () => {
      const a = await api.token("iso-a");
      const b = await api.token("iso-b");
      const data = randomBytes(1234);
      const f = (
        await api.call({ method: "POST", url: "/v1/files", payload: data, token: a.secret })
      ).json() as FileJson;
      expect(
        (await api.call({ method: "GET", url: `/v1/files/${f.sha256}`, token: a.secret })).statusCode,
      ).toBe(200);

      for (const token of [b.secret]) {
        expectErrorBody(await api.call({ method: "GET", url: `/v1/files/${f.sha256}`, token }), 404);
        expect((await api.call({ method: "HEAD", url: `/v1/files/${f.sha256}`, token })).statusCode).toBe(
          404,
        );
        expectErrorBody(await api.call({ method: "GET", url: `/v1/files?sha256=${f.sha256}`, token }), 404);
        expect(
          (await api.call({ method: "HEAD", url: `/v1/files?sha256=${f.sha256}`, token })).statusCode,
        ).toBe(404);
        expectErrorBody(await api.call({ method: "GET", url: `/v1/files?uuid=${f.uuid}`, token }), 404);
        expect((await api.call({ method: "HEAD", url: `/v1/files?uuid=${f.uuid}`, token })).statusCode).toBe(
          404,
        );
        const listed = (await api.call({ method: "GET", url: "/v1/files?limit=1000", token })).json() as {
          files: FileJson[];
        };
        expect(listed.files).toEqual([]);
      }
      // An admin switched into B sees B's view, not A's.
      expect(
        (await api.call({ method: "GET", url: `/v1/files/${f.sha256}`, project: "iso-b" })).statusCode,
      ).toBe(404);
      expect(
        (await api.call({ method: "GET", url: `/v1/files/${f.sha256}`, project: "iso-a" })).statusCode,
      ).toBe(200);
      // B uploading the same bytes gets its own record.
      const fb = (
        await api.call({ method: "POST", url: "/v1/files", payload: data, token: b.secret })
      ).json() as FileJson;
      expect(fb.sha256).toBe(f.sha256);
      expect(fb.uuid).not.toBe(f.uuid);
      expectErrorBody(
        await api.call({ method: "GET", url: `/v1/files?uuid=${f.uuid}`, token: b.secret }),
        404,
      );
    });
  });
});
