import type { FastifyRequest } from "fastify";
import type { Principal } from "../auth/principal.js";
import { unauthenticated } from "../core/errors.js";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Routes that answer without a token (metrics, OpenAPI document). */
    public?: boolean;
  }
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal)
    throw unauthenticated("missing or malformed Authorization header (expected: Bearer <token>)");
  return req.principal;
}
