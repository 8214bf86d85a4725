import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { type FileItem, listingText, listingTextChunks } from "../inspect/file-item.js";
import { listingJson, sendStream } from "./stream-reply.js";

function items(n: number): FileItem[] {
  return Array.from({ length: n }, (_, i) => ({
    path: i % 7 === 0 ? `odd\n"name"\\${i}` : `f${i}`,
    size: i * 1013,
    owner: i % 3 === 0 ? "root" : "nobody",
    group: "g",
    uid: i % 3,
    gid: 0,
    mode: i % 5 === 0 ? 0o120777 : 0o100644,
    mtime: 1_700_000_000 + i,
    nlink: 1 + (i % 12),
    is_dir: false,
    is_regular: i % 5 !== 0,
    is_symlink: i % 5 === 0,
    is_socket: false,
    is_fifo: false,
    symlink_to: i % 5 === 0 ? "target" : "",
  }));
}

describe("streamed listings", () => {
  it("JSON pieces join to what JSON.stringify gives", () => {
    for (const n of [0, 1, 499, 500, 501, 2500]) {
      const listing = { path: '/a"b', files: items(n) };
      expect([...listingJson(listing, 500)].join("")).toBe(JSON.stringify(listing));
    }
  });

  it("text pieces join to the one-string text, aligned over all rows", () => {
    const now = 1_700_000_500;
    for (const n of [0, 1, 999, 5000]) {
      const all = items(n);
      const pieces = [...listingTextChunks(all, 100, now)];
      expect(pieces.join("")).toBe(listingText(all, now));
      expect(pieces.length).toBe(Math.max(1, Math.ceil(n / 100)));
    }
  });

  it("a directory of a million entries is listed as text without a stack overflow", () => {
    const many = items(1_000_000);
    let rows = 0;
    for (const p of listingTextChunks(many, 10_000)) rows += p.split("\n").length - 1;
    expect(rows).toBe(1_000_001);
  });
});

describe("streamed documents", () => {
  it("HEAD answers with the headers alone and never makes the body; GET sends it", async () => {
    const app = Fastify();
    let made = 0;
    async function* body(): AsyncGenerator<string> {
      made++;
      yield '{"a":';
      yield "1}";
    }
    app.get("/doc", (req, reply) => sendStream(req, reply, "application/json; charset=utf-8", body()));
    try {
      const head = await app.inject({ method: "HEAD", url: "/doc" });
      expect(head.statusCode).toBe(200);
      expect(head.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(head.body).toBe("");
      expect(made).toBe(0);
      const get = await app.inject({ method: "GET", url: "/doc" });
      expect(get.body).toBe('{"a":1}');
      expect(made).toBe(1);
    } finally {
      await app.close();
    }
  });
});
