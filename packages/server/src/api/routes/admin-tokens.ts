import { Type } from "@sinclair/typebox";
import {
  type ListedToken,
  MAX_TOKEN_LIFETIME_SECONDS,
  PERMISSIONS,
  PROJECT_NAME_RE,
  requireAdmin,
} from "../../auth/token-admin.js";
import { unavailable } from "../../core/errors.js";
import { isoMicros } from "../../core/time.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { IdParamSchema } from "../params.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const PermissionSchema = Type.Unsafe<(typeof PERMISSIONS)[number]>({
  type: "string",
  enum: [...PERMISSIONS],
  "x-error": `permissions must each be one of: ${PERMISSIONS.join(", ")}`,
});

const ProjectNameSchema = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: PROJECT_NAME_RE.source,
  "x-error": "project must be a project name ([a-z0-9][a-z0-9_.-]{0,62})",
});

const tokenProperties = {
  id: Type.String(),
  name: Type.String({ description: "free text given when it was created (`token create --description`)" }),
  project: Type.String(),
  permissions: Type.Array(Type.String(), { description: "the permissions it has, in a fixed order" }),
  admin: Type.Boolean({ description: "may select any project with the Project header" }),
  created_at: Type.String(),
  expires_at: Type.Union([Type.String(), Type.Null()]),
  revoked_at: Type.Union([Type.String(), Type.Null()]),
  last_used_at: Type.Union([Type.String(), Type.Null()], {
    description: "the last authenticated request, to the minute; null: never used",
  }),
};
const AdminTokenSchema = Type.Object(tokenProperties);
const CreatedTokenSchema = Type.Object({
  ...tokenProperties,
  token: Type.String({ description: "the secret: shown in this response only" }),
});

const CreateTokenBody = Type.Object(
  {
    project: ProjectNameSchema,
    name: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: "^[^\\u0000-\\u001f\\u007f]+$",
      "x-error": "name must be 1 to 200 characters without control characters",
    }),
    permissions: Type.Array(PermissionSchema, {
      maxItems: PERMISSIONS.length,
      uniqueItems: true,
      "x-error": `permissions must be a list of distinct names from: ${PERMISSIONS.join(", ")}`,
    }),
    admin: Type.Optional(
      Type.Boolean({ description: "an admin token (only an admin may ask; never implied)" }),
    ),
    expires_in_seconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_TOKEN_LIFETIME_SECONDS,
        "x-error": `expires_in_seconds must be an integer from 1 to ${MAX_TOKEN_LIFETIME_SECONDS}`,
      }),
    ),
  },
  { additionalProperties: true },
);

function tokenJson(t: ListedToken) {
  const r = t.token;
  return {
    id: r.id,
    name: r.description,
    project: t.project,
    permissions: PERMISSIONS.filter((p) => r.permissions[p]),
    admin: r.admin,
    created_at: isoMicros(r.createdAt),
    expires_at: r.expiresAt === null ? null : isoMicros(r.expiresAt * 1000),
    revoked_at: r.revokedAt === null ? null : isoMicros(r.revokedAt),
    last_used_at: r.lastUsedAt === null ? null : isoMicros(r.lastUsedAt),
  };
}

/**
 * `/v1/admin/tokens` (extension, admin tokens only): list, create (the secret in the 201 only),
 * revoke. Never returns a secret's hash; a listed token is never shown its secret again.
 */
export function adminTokenRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const admin = () => {
      if (!deps.admin) throw unavailable("token administration is not available on this server");
      return deps.admin;
    };

    app.get(
      "/admin/tokens",
      {
        schema: {
          summary: "List tokens, revoked and expired ones too (extension; admin tokens only)",
          querystring: Type.Object({ project: Type.Optional(Type.String({ maxLength: 64 })) }),
          response: {
            200: Type.Object({ tokens: Type.Array(AdminTokenSchema) }),
            401: ErrorSchema,
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        requireAdmin(principalOf(req).token, "listing tokens");
        return { tokens: (await admin().tokens(req.query.project)).map(tokenJson) };
      },
    );

    app.post(
      "/admin/tokens",
      {
        schema: {
          summary:
            "Create a token no more powerful than the caller; its secret is in this response only (extension; admin tokens only)",
          body: CreateTokenBody,
          response: {
            201: CreatedTokenSchema,
            400: ErrorSchema,
            401: ErrorSchema,
            403: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const caller = principalOf(req).token;
        requireAdmin(caller, "creating tokens");
        const b = req.body;
        const issued = await admin().issue(caller, {
          project: b.project,
          name: b.name,
          permissions: b.permissions,
          ...(b.admin !== undefined ? { admin: b.admin } : {}),
          ...(b.expires_in_seconds !== undefined ? { expiresInSeconds: b.expires_in_seconds } : {}),
        });
        // An audit line: who made which token (never its secret).
        deps.logger.info(
          {
            token_id: issued.token.id,
            project: issued.project,
            admin: issued.token.admin,
            permissions: b.permissions,
            by: caller.id,
          },
          "token created",
        );
        void reply.header("cache-control", "no-store");
        return reply.code(201).send({ ...tokenJson(issued), token: issued.secret });
      },
    );

    app.delete(
      "/admin/tokens/:token_id",
      {
        schema: {
          summary: "Revoke a token at once, the calling one included (extension; admin tokens only)",
          params: Type.Object({ token_id: IdParamSchema }),
          response: { 204: Type.Null(), 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (req, reply) => {
        const caller = principalOf(req).token;
        requireAdmin(caller, "revoking tokens");
        await admin().revoke(req.params.token_id);
        deps.logger.info({ token_id: req.params.token_id.toLowerCase(), by: caller.id }, "token revoked");
        return reply.code(204).send(null);
      },
    );
  };
}
