import { Type } from "@sinclair/typebox";
import { effectiveLimits } from "../../config/limits.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const WhoAmI = Type.Object({
  token_uuid: Type.String(),
  token_expiration: Type.Union([Type.Integer(), Type.Null()]),
  project: Type.String(),
  permissions: Type.Record(Type.String(), Type.Boolean()),
  limits: Type.Record(Type.String(), Type.Integer()),
  operations_stat: Type.Record(Type.String(), Type.Integer()),
  admin: Type.Optional(
    Type.Boolean({
      description: "extension: an admin token (any project via the Project header, /v1/admin/*)",
    }),
  ),
  egress: Type.Optional(
    Type.Object(
      { allow: Type.Optional(Type.Array(Type.String())), deny: Type.Optional(Type.Array(Type.String())) },
      {
        description:
          "extension: the project's egress rules, which every run with networking gets and may only narrow (docs/egress.md)",
        "x-contree-extension": true,
      },
    ),
  ),
});

export function whoamiRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    app.get(
      "/whoami",
      { schema: { summary: "Token introspection", response: { 200: WhoAmI, 401: ErrorSchema } } },
      async (req) => {
        const p = principalOf(req);
        return {
          token_uuid: p.token.id,
          token_expiration: p.token.expiresAt,
          project: p.project.name,
          permissions: { ...p.token.permissions },
          limits: { ...effectiveLimits(deps.config.defaultLimits, p.project) },
          operations_stat: await deps.operations.stats(p.project.id),
          admin: p.token.admin,
          ...(p.project.egress === undefined ? {} : { egress: p.project.egress }),
        };
      },
    );
  };
}
