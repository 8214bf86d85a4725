import { Type } from "@sinclair/typebox";
import { PROJECT_NAME_RE, requireAdmin } from "../../auth/token-admin.js";
import { effectiveLimits } from "../../config/limits.js";
import { unavailable } from "../../core/errors.js";
import { isoMicros } from "../../core/time.js";
import type { Project } from "../../metadata/repos/project-repo.js";
import type { ProjectUsageView } from "../../snapshots/usage-view.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const Split = Type.Object({ exclusive: Type.Integer(), shared: Type.Integer() });
const ProjectUsage = Type.Object(
  {
    images: Type.Integer(),
    layers: Type.Integer(),
    files: Type.Integer(),
    exclusive_bytes: Type.Integer(),
    shared_bytes: Type.Integer(),
    charged_bytes: Type.Integer(),
    storage_max_bytes: Type.Union([Type.Integer(), Type.Null()]),
    layer_bytes: Split,
    file_bytes: Split,
  },
  { description: "as in GET /v1/admin/usage (the server's last usage pass)" },
);
const AdminProject = Type.Object({
  id: Type.String(),
  name: Type.String(),
  created_at: Type.String(),
  limits: Type.Record(Type.String(), Type.Integer(), { description: "in force, as whoami shows them" }),
  usage: Type.Optional(ProjectUsage),
});

/**
 * `/v1/admin/projects` (extension, admin tokens only): every project with its limits in force
 * and its storage usage from the last usage pass; create one.
 */
export function adminProjectRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const admin = () => {
      if (!deps.admin) throw unavailable("project administration is not available on this server");
      return deps.admin;
    };
    const usageJson = ({ project: _name, ...u }: ProjectUsageView) => u;
    const projectJson = (p: Project, usage?: ProjectUsageView) => ({
      id: p.id,
      name: p.name,
      created_at: isoMicros(p.createdAt),
      limits: { ...effectiveLimits(deps.config.defaultLimits, p) },
      ...(usage ? { usage: usageJson(usage) } : {}),
    });

    app.get(
      "/admin/projects",
      {
        schema: {
          summary: "Projects with their limits and storage usage (extension; admin tokens only)",
          response: {
            200: Type.Object({ projects: Type.Array(AdminProject) }),
            401: ErrorSchema,
            403: ErrorSchema,
          },
        },
      },
      async (req) => {
        requireAdmin(principalOf(req).token, "listing projects");
        const projects = await admin().projects();
        const usage = deps.usage ? (await deps.usage.view()).projects : [];
        const byName = new Map(usage.map((u) => [u.project, u]));
        return { projects: projects.map((p) => projectJson(p, byName.get(p.name))) };
      },
    );

    app.post(
      "/admin/projects",
      {
        schema: {
          summary: "Create a project (extension; admin tokens only)",
          body: Type.Object(
            {
              name: Type.String({
                minLength: 1,
                maxLength: 63,
                pattern: PROJECT_NAME_RE.source,
                "x-error": "name must match [a-z0-9][a-z0-9_.-]{0,62}",
              }),
            },
            { additionalProperties: true },
          ),
          response: {
            201: AdminProject,
            400: ErrorSchema,
            401: ErrorSchema,
            403: ErrorSchema,
            409: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const caller = principalOf(req).token;
        requireAdmin(caller, "creating projects");
        const p = await admin().createProject(req.body.name);
        deps.logger.info({ project: p.name, by: caller.id }, "project created");
        return reply.code(201).send(projectJson(p));
      },
    );
  };
}
