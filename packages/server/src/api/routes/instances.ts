import { Type } from "@sinclair/typebox";
import { SpawnBodySchema } from "../../instances/spawn-request.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

export function instancesRoutes(s: Services) {
  return async (app: ApiApp): Promise<void> => {
    app.post(
      "/instances",
      {
        schema: {
          summary: "Run a command in a sandbox over an image (async operation)",
          body: SpawnBodySchema,
          response: {
            202: Type.Object({ uuid: Type.String(), status: Type.String() }, { additionalProperties: true }),
            400: ErrorSchema,
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const { op, meta } = await s.instances.spawn(principalOf(req), req.body);
        void reply.header("location", `${s.config.pathPrefix}/v1/operations/${op.id}`);
        return reply.code(202).send({ uuid: op.id, status: "PENDING", ...meta });
      },
    );
  };
}
