import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../app.js";

export async function metricsRoutes(app: FastifyInstance, deps: AppDeps, prefix: string): Promise<void> {
  const paths = prefix === "" ? ["/metrics"] : ["/metrics", `${prefix}/metrics`];
  for (const url of paths) {
    app.get(url, { config: { public: true }, schema: { hide: true } }, async (_req, reply) => {
      void reply.type("text/plain; version=0.0.4; charset=utf-8");
      return deps.metrics.render();
    });
  }
}
