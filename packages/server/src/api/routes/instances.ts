import { type TSchema, Type } from "@sinclair/typebox";
import type { Config } from "../../config/config.js";
import type { InstanceService } from "../../instances/instance-service.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";

const Obj = Type.Object({}, { additionalProperties: true });
const Maybe = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

/** The spawn body; semantics (defaults, caps, every mode spelling) live in spawn-request.ts. */
const SpawnBody = Type.Object(
  {
    command: Type.String(),
    image: Type.String({ description: 'image UUID or "tag:NAME"' }),
    args: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
    shell: Maybe(Type.Boolean()),
    env: Type.Optional(Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()])),
    preserve_env: Maybe(Type.Boolean()),
    cwd: Maybe(Type.String()),
    hostname: Maybe(Type.String()),
    uid: Maybe(Type.Integer()),
    gid: Maybe(Type.Integer()),
    disposable: Maybe(Type.Boolean()),
    stdin: Type.Optional(Type.Union([Obj, Type.String(), Type.Null()])),
    timeout: Maybe(Type.Integer()),
    truncate_output_at: Maybe(Type.Integer()),
    files: Type.Optional(Type.Union([Type.Record(Type.String(), Obj), Type.Null()])),
    resources_limits: Type.Optional(Type.Union([Obj, Type.Null()])),
    networking: Type.Optional(Type.Union([Obj, Type.Null()])),
  },
  { additionalProperties: true },
);

export function instancesRoutes(d: { config: Config; instances: InstanceService }) {
  return async (app: ApiApp): Promise<void> => {
    app.post(
      "/instances",
      {
        schema: {
          summary: "Run a command in a sandbox over an image (async operation)",
          body: SpawnBody,
          response: {
            202: Type.Object({ uuid: Type.String(), status: Type.String() }, { additionalProperties: true }),
            400: ErrorSchema,
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        const { op, meta } = await d.instances.spawn(p, req.body);
        void reply.header("location", `${d.config.pathPrefix}/v1/operations/${op.id}`);
        return reply.code(202).send({ uuid: op.id, status: "PENDING", ...meta });
      },
    );
  };
}
