import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { typed } from "../../src/api/api-app.js";
import { uiRoutes } from "../../src/api/routes/ui.js";
import type { Services } from "../../src/api/services.js";

/** Only what the ui route reads: the path prefix and where the built console is. */
function services(pathPrefix: string, uiDir: string): Services {
  return { config: { pathPrefix }, uiDir } as unknown as Services;
}

describe("the web console's static route", () => {
  const dirs: string[] = [];
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function serve(prefix: string, files: Record<string, string> | undefined) {
    const dir = await mkdtemp(join(tmpdir(), "contree-ui-"));
    dirs.push(dir);
    const root = join(dir, "ui");
    if (files !== undefined) {
      for (const [name, body] of Object.entries(files)) {
        await mkdir(join(root, name, ".."), { recursive: true });
        await writeFile(join(root, name), body);
      }
    }
    await writeFile(join(dir, "secret.txt"), "outside the console");
    app = Fastify({ routerOptions: { ignoreTrailingSlash: true } });
    await uiRoutes(services(prefix, root))(typed(app));
    return app;
  }

  it("answers 503 with a sentence when the console was not built, and does not crash", async () => {
    const a = await serve("", undefined);
    for (const url of ["/ui/", "/ui/images/x", "/ui/assets/index.js"]) {
      const r = await a.inject({ url });
      expect(r.statusCode, url).toBe(url.includes("assets") ? 404 : 503);
    }
    const r = await a.inject({ url: "/ui/" });
    expect(r.json()).toEqual({ error: expect.stringMatching(/not built/), status: 503 });
    expect(r.headers["content-security-policy"]).toContain("default-src 'self'");
  });

  it("serves under the path prefix, gzips large text, keeps escapes out", async () => {
    const big = `console.log(${JSON.stringify("x".repeat(4000))});`;
    const a = await serve("/p", {
      "index.html": "<!doctype html><head></head><p>console</p>",
      "assets/app-1.js": big,
    });
    expect((await a.inject({ url: "/p/ui" })).headers["location"]).toBe("/p/ui/");
    expect((await a.inject({ url: "/ui/" })).statusCode).toBe(404);
    for (const url of ["/p/ui/", "/p/ui/deeper/route", "/p/ui/index.html"])
      expect((await a.inject({ url })).body, url).toBe(
        '<!doctype html><head><base href="/p/ui/"></head><p>console</p>',
      );
    const gz = await a.inject({ url: "/p/ui/assets/app-1.js", headers: { "accept-encoding": "gzip" } });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers["cache-control"]).toContain("immutable");
    const plain = await a.inject({ url: "/p/ui/assets/app-1.js" });
    expect(plain.body).toBe(big);
    for (const url of [
      "/p/ui/../secret.txt",
      "/p/ui/%2e%2e/secret.txt",
      "/p/ui/assets/..%2f..%2fsecret.txt",
    ]) {
      const r = await a.inject({ url });
      expect(r.body, url).not.toContain("outside the console");
    }
  });
});
