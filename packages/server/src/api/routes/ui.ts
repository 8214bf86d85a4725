import { readFile, stat } from "node:fs/promises";
import { extname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ApiApp } from "../api-app.js";
import { acceptsGzip } from "../compression.js";
import type { Services } from "../services.js";

const gzip = promisify(gzipCb);

/** `src/api/routes` and `dist/api/routes` both sit three levels below the package root. */
export const DEFAULT_UI_DIR = fileURLToPath(new URL("../../../dist/ui/", import.meta.url));

/**
 * No inline script or style attribute from markup, nothing from another origin, no framing:
 * the console shows file contents of images, so even a rendering bug must not run them.
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

interface Cached {
  mtimeMs: number;
  size: number;
  body: Buffer;
  gz?: Buffer;
}

/**
 * The web console at `<prefix>/ui/` (static files built by `packages/web`): public (the page
 * itself holds no data; every API call carries the user's token), offline, hashed assets cached
 * for a year, index.html revalidated. Paths under `/ui/` that name no file get index.html (the
 * console routes by the URL fragment, so this only catches hand-typed paths); a missing asset is
 * a 404. A server built without the console answers 503 with a sentence, not a crash.
 */
export function uiRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const root = deps.uiDir ?? DEFAULT_UI_DIR;
    const base = `${deps.config.pathPrefix}/ui`;
    const cache = new Map<string, Cached>();

    // index.html names its assets relatively (the prefix is not known at build time): a <base>
    // makes them resolve from `<prefix>/ui/` even when it is served for a deeper path.
    const baseTag = `<base href="${base.replace(/[^\w/.~-]/g, encodeURIComponent)}/">`;
    const load = async (file: string, isIndex = false): Promise<Cached | undefined> => {
      const st = await stat(file).catch(() => undefined);
      if (st === undefined || !st.isFile()) return undefined;
      const hit = cache.get(file);
      if (hit !== undefined && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
      const raw = await readFile(file);
      const body = isIndex ? Buffer.from(raw.toString("utf8").replace("<head>", `<head>${baseTag}`)) : raw;
      const entry: Cached = { mtimeMs: st.mtimeMs, size: st.size, body };
      const type = TYPES[extname(file)] ?? "";
      if (body.length >= 1024 && (type.startsWith("text/") || type.startsWith("image/svg")))
        entry.gz = await gzip(body);
      cache.set(file, entry);
      return entry;
    };

    const send = (req: FastifyRequest, reply: FastifyReply, file: string, c: Cached, immutable: boolean) => {
      void reply
        .header("content-type", TYPES[extname(file)] ?? "application/octet-stream")
        .header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache")
        .header("vary", "accept-encoding");
      if (c.gz !== undefined && acceptsGzip(String(req.headers["accept-encoding"] ?? ""))) {
        void reply.header("content-encoding", "gzip");
        return reply.send(c.gz);
      }
      return reply.send(c.body);
    };

    const serve = async (req: FastifyRequest, reply: FastifyReply) => {
      void reply
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY");
      const pathname = req.url.split("?")[0]!;
      // ignoreTrailingSlash routes `/ui` here too: relative asset URLs need the slash.
      if (pathname === base) return reply.redirect(`${base}/`, 301);
      let rel: string;
      try {
        rel = decodeURIComponent(pathname.slice(base.length + 1));
      } catch {
        return reply.code(400).send({ error: "bad path", status: 400 });
      }
      const parts = rel.split("/").filter((s) => s !== "");
      if (parts.some((s) => s === ".." || s === "." || s.includes("\\") || s.includes("\0")))
        return reply.code(404).send({ error: "not found", status: 404 });
      if (parts.length > 0) {
        const file = join(root, ...parts);
        if (!file.startsWith(root.endsWith(sep) ? root : root + sep))
          return reply.code(404).send({ error: "not found", status: 404 });
        const c = await load(file, parts.length === 1 && parts[0] === "index.html");
        if (c !== undefined) return send(req, reply, file, c, parts[0] === "assets");
        // A missing asset is a 404; any other path is a route of the console.
        if (parts[0] === "assets" || extname(rel) !== "")
          return reply.code(404).send({ error: "not found", status: 404 });
      }
      const indexFile = join(root, "index.html");
      const index = await load(indexFile, true);
      if (index === undefined)
        return reply.code(503).send({
          error: "the web console is not built into this server (run `npm run build`)",
          status: 503,
        });
      return send(req, reply, indexFile, index, false);
    };

    const opts = { config: { public: true }, schema: { hide: true } } as const;
    app.get(base, opts, serve);
    app.get(`${base}/*`, opts, serve);
  };
}
