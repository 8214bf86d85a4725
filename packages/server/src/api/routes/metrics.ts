import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { permissionDenied } from "../../core/errors.js";
import type { ApiApp } from "../api-app.js";
import type { Services } from "../services.js";

/**
 * `GET /metrics` (Prometheus text) is not public: request counts, routes and error kinds tell
 * an outsider how the server is used. A scraper presents `CONTREE_METRICS_TOKEN` as a bearer
 * token, or an admin API token; anyone else gets 401/403. `CONTREE_METRICS_TOKEN=public`
 * serves it without authentication (only for a listener no tenant can reach). Registered at the
 * root, not under `<prefix>/v1`.
 */
export function metricsRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const prefix = deps.config.pathPrefix;
    const paths = prefix === "" ? ["/metrics"] : ["/metrics", `${prefix}/metrics`];
    const configured = deps.config.metricsToken;
    const digest = (s: string) => createHash("sha256").update(s).digest();
    const want = configured === undefined || configured === "public" ? undefined : digest(configured);

    const authorize = async (req: FastifyRequest): Promise<void> => {
      if (configured === "public") return;
      const header = req.headers.authorization;
      const bearer = header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
      if (want !== undefined && bearer !== undefined && timingSafeEqual(digest(bearer), want)) return;
      const p = await deps.auth.authenticate(header, undefined);
      if (!p.token.admin) throw permissionDenied("metrics need an admin token or the metrics token");
    };

    for (const url of paths) {
      app.get(url, { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
        await authorize(req);
        void reply.type("text/plain; version=0.0.4; charset=utf-8");
        return deps.metrics.render();
      });
    }
  };
}
