import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { authenticate } from "../../auth/principal.js";
import { permissionDenied } from "../../core/errors.js";
import type { AppDeps } from "../app.js";

/**
 * `GET /metrics` (Prometheus text) is not public: request counts, routes and error kinds tell
 * an outsider how the server is used. A scraper presents `CONTREE_METRICS_TOKEN` as a bearer
 * token, or an admin API token; anyone else gets 401/403. `CONTREE_METRICS_TOKEN=public`
 * serves it without authentication (only for a listener no tenant can reach).
 */
export async function metricsRoutes(app: FastifyInstance, deps: AppDeps, prefix: string): Promise<void> {
  const paths = prefix === "" ? ["/metrics"] : ["/metrics", `${prefix}/metrics`];
  const configured = deps.config.metricsToken;
  const digest = (s: string) => createHash("sha256").update(s).digest();
  const want = configured === undefined || configured === "public" ? undefined : digest(configured);

  const authorize = async (req: FastifyRequest): Promise<void> => {
    if (configured === "public") return;
    const header = req.headers.authorization;
    const bearer = header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (want !== undefined && bearer !== undefined && timingSafeEqual(digest(bearer), want)) return;
    const p = await authenticate(deps.store, header, undefined);
    if (!p.token.admin) throw permissionDenied("metrics need an admin token or the metrics token");
  };

  for (const url of paths) {
    app.get(url, { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
      await authorize(req);
      void reply.type("text/plain; version=0.0.4; charset=utf-8");
      return deps.metrics.render();
    });
  }
}
