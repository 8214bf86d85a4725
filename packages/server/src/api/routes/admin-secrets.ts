import { type Static, Type } from "@sinclair/typebox";
import { invalidArgument, permissionDenied } from "../../core/errors.js";
import {
  MAX_SECRET_HOSTS,
  SECRET_MAX_BYTES,
  SECRET_MIN_BYTES,
  SECRET_NAME_PATTERN,
  type SecretInfo,
} from "../../secrets/secret-service.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const ProjectParam = Type.String({ minLength: 1, maxLength: 64, description: "project name or id" });
const NameParam = Type.String({
  pattern: SECRET_NAME_PATTERN,
  "x-error": "the secret name must be a letter or _, then letters, digits, _ . - (at most 128)",
});
const SecretMeta = Type.Object({
  name: Type.String(),
  size: Type.Integer({ description: "bytes of the value (the value itself is never returned)" }),
  hosts: Type.Array(Type.String(), { description: "where header mode may send it (none: no header mode)" }),
  allow_env: Type.Boolean({ description: "whether a run may have the value itself (env mode)" }),
  created_at: Type.String(),
  updated_at: Type.String(),
  last_used_at: Type.Union([Type.String(), Type.Null()]),
});
const PutBody = Type.Object(
  {
    value: Type.String({
      minLength: 1,
      maxLength: Math.ceil((SECRET_MAX_BYTES * 4) / 3) + 4,
      "x-error": "value must be a string",
    }),
    encoding: Type.Optional(
      Type.Union([Type.Literal("utf8"), Type.Literal("base64")], {
        "x-error": 'encoding must be "utf8" or "base64"',
      }),
    ),
    hosts: Type.Optional(
      Type.Array(Type.String({ maxLength: 253 }), {
        maxItems: MAX_SECRET_HOSTS,
        "x-error": `hosts must be an array of at most ${MAX_SECRET_HOSTS} host names or *.domain`,
        description: "hosts (or *.domain) header mode may send the value to; none: header mode is refused",
      }),
    ),
    allow_env: Type.Optional(
      Type.Boolean({
        "x-error": "allow_env must be a boolean",
        description: "whether a run may have the value itself in env mode (default true)",
      }),
    ),
  },
  { additionalProperties: true },
);

const iso = (ms: number) => new Date(ms).toISOString();
const view = (s: SecretInfo): Static<typeof SecretMeta> => ({
  name: s.name,
  size: s.size,
  hosts: s.hosts,
  allow_env: s.allowEnv,
  created_at: iso(s.createdAt),
  updated_at: iso(s.updatedAt),
  last_used_at: s.lastUsedAt === null ? null : iso(s.lastUsedAt),
});

/**
 * `/v1/admin/secrets/{project}[/{name}]` (extension, admin tokens only): store or replace a
 * project secret, list names with metadata, delete. No endpoint returns a value (docs/secrets.md).
 */
export function adminSecretsRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const secrets = deps.secrets;
    if (!secrets) return;
    const admin = (req: Parameters<typeof principalOf>[0]) => {
      if (!principalOf(req).token.admin) throw permissionDenied("secrets need an admin token");
    };
    app.put(
      "/admin/secrets/:project/:name",
      {
        schema: {
          summary: `Store or replace a project secret (extension, admin tokens only; ${SECRET_MIN_BYTES} B to ${SECRET_MAX_BYTES} B, never returned)`,
          params: Type.Object({ project: ProjectParam, name: NameParam }),
          body: PutBody,
          response: {
            200: SecretMeta,
            201: SecretMeta,
            400: ErrorSchema,
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        admin(req);
        const body = req.body;
        const value = body.encoding === "base64" ? base64Value(body.value) : Buffer.from(body.value, "utf8");
        try {
          const r = await secrets.set(req.params.project, req.params.name, value, {
            ...(body.hosts ? { hosts: body.hosts } : {}),
            ...(body.allow_env !== undefined ? { allowEnv: body.allow_env } : {}),
          });
          return reply.code(r.created ? 201 : 200).send(view(r.info));
        } finally {
          value.fill(0);
        }
      },
    );
    app.get(
      "/admin/secrets/:project",
      {
        schema: {
          summary:
            "List a project's secrets: names and metadata, never values (extension, admin tokens only)",
          params: Type.Object({ project: ProjectParam }),
          response: {
            200: Type.Object({ secrets: Type.Array(SecretMeta) }),
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        admin(req);
        return { secrets: (await secrets.list(req.params.project)).map(view) };
      },
    );
    app.delete(
      "/admin/secrets/:project/:name",
      {
        schema: {
          summary: "Delete a project secret (extension, admin tokens only)",
          params: Type.Object({ project: ProjectParam, name: NameParam }),
          response: {
            200: Type.Object({ name: Type.String(), deleted: Type.Literal(true) }),
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        admin(req);
        await secrets.delete(req.params.project, req.params.name);
        return { name: req.params.name, deleted: true as const };
      },
    );
  };
}

function base64Value(text: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0)
    throw invalidArgument("value is not valid base64");
  return Buffer.from(text, "base64");
}
