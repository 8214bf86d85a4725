import { Type } from "@sinclair/typebox";
import { notFound, permissionDenied } from "../../core/errors.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const Split = Type.Object({ exclusive: Type.Integer(), shared: Type.Integer() });
const ProjectUsage = Type.Object({
  project: Type.String(),
  images: Type.Integer(),
  layers: Type.Integer(),
  files: Type.Integer(),
  exclusive_bytes: Type.Integer({ description: "held by this project alone: what deleting all of it frees" }),
  shared_bytes: Type.Integer({ description: "held by other projects too (public images' layers included)" }),
  charged_bytes: Type.Integer({
    description: "what the storage quota counts: all but public images' layers",
  }),
  storage_max_bytes: Type.Union([Type.Integer(), Type.Null()]),
  layer_bytes: Split,
  file_bytes: Split,
});
const Usage = Type.Object({
  computed_at: Type.String(),
  duration_ms: Type.Integer(),
  totals: Type.Object({
    images: Type.Integer(),
    layers: Type.Integer(),
    layer_bytes: Type.Integer(),
    unreferenced_layers: Type.Integer(),
    unreferenced_layer_bytes: Type.Integer(),
    files: Type.Integer(),
    blobs: Type.Integer(),
    blob_bytes: Type.Integer(),
  }),
  projects: Type.Array(ProjectUsage),
});

/**
 * `GET /v1/admin/usage` (extension, admin tokens only): storage per project from the server's
 * last usage pass (at most a refresh interval old; `computed_at` says when).
 */
export function adminUsageRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const usage = deps.usage;
    if (!usage) return;
    app.get(
      "/admin/usage",
      {
        schema: {
          summary: "Storage usage per project (admin tokens only)",
          querystring: Type.Object({ project: Type.Optional(Type.String({ maxLength: 64 })) }),
          response: { 200: Usage, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (req) => {
        if (!principalOf(req).token.admin) throw permissionDenied("storage usage needs an admin token");
        const view = await usage.view(req.query.project);
        if (req.query.project !== undefined && view.projects.length === 0)
          throw notFound(`project ${JSON.stringify(req.query.project)} not found`);
        return view;
      },
    );
  };
}
