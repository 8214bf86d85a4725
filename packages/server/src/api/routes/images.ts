import { Type } from "@sinclair/typebox";
import { requirePermission } from "../../auth/principal.js";
import { effectiveLimits } from "../../config/limits.js";
import { invalidArgument } from "../../core/errors.js";
import { isoMicros, parseFlag } from "../../core/time.js";
import { ImportBodySchema } from "../../images/import-body.js";
import { TAG_PATTERN } from "../../images/tag-grammar.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema, FlagSchema, PageQuerySchema, parsePage } from "../pagination.js";
import { IdParamSchema, TagTextSchema } from "../params.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";
import { ImageSchema, imageJson } from "../views/image-view.js";

const ImageParams = Type.Object({ image_uuid: IdParamSchema });

export function imagesRoutes(d: Services) {
  return async (app: ApiApp): Promise<void> => {
    app.addSchema(ImageSchema);

    app.get(
      "/images",
      {
        schema: {
          summary: "List images (tag filter is a prefix; the exact match comes first)",
          querystring: Type.Object({
            ...PageQuerySchema,
            tagged: FlagSchema,
            tag: Type.Optional(TagTextSchema),
            uuid: Type.Optional(Type.String({ maxLength: 64 })),
            kind: Type.Optional(Type.String({ maxLength: 64, description: "legacy, ignored" })),
          }),
          response: { 200: Type.Object({ images: Type.Array(Type.Ref(ImageSchema)) }), 400: ErrorSchema },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const q = req.query;
        const rows = await d.images.list(p.project, {
          ...parsePage(q),
          tagged: parseFlag(q.tagged),
          tagPrefix: q.tag === undefined || q.tag === "" ? undefined : q.tag,
          uuid: q.uuid === undefined || q.uuid === "" ? undefined : q.uuid.toLowerCase(),
        });
        return { images: rows.map((r) => imageJson(r, r.tag)) };
      },
    );

    app.post(
      "/images/import",
      {
        schema: {
          summary: "Import an image from an OCI registry (async operation)",
          body: ImportBodySchema,
          response: { 202: Type.Object({ uuid: Type.String() }), 400: ErrorSchema, 403: ErrorSchema },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "import");
        const limits = effectiveLimits(d.config.defaultLimits, p.project);
        const op = await d.imports.start(p.project, req.body, limits.images_import_max_timeout);
        void reply.header("location", `${d.config.pathPrefix}/v1/operations/${op.id}`);
        return reply.code(202).send({ uuid: op.id });
      },
    );

    app.patch(
      "/images/:image_uuid/tag",
      {
        schema: {
          summary: "Set or move a tag",
          params: ImageParams,
          body: Type.Object(
            {
              tag: Type.String({
                minLength: 1,
                maxLength: 256,
                pattern: `^${TAG_PATTERN}$`,
                "x-error":
                  'tag must be letters, digits, "_" and "-" separated by ":", "/" or "." (at most 256 characters)',
              }),
            },
            { additionalProperties: true },
          ),
          response: { 200: Type.Ref(ImageSchema), 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requirePermission(p, "set_image_tag");
        const img = await d.images.setTag(p.project, req.params.image_uuid.toLowerCase(), req.body.tag);
        return imageJson(img, req.body.tag);
      },
    );

    app.delete(
      "/images/:image_uuid",
      {
        schema: {
          summary:
            "Delete an image of this project (extension; 409 while tagged unless force, which removes its tags)",
          params: ImageParams,
          querystring: Type.Object({ force: FlagSchema }),
          response: {
            200: Type.Object({
              uuid: Type.String(),
              deleted: Type.Literal(true),
              deleted_at: Type.String(),
              tags_removed: Type.Array(Type.String()),
            }),
            403: ErrorSchema,
            404: ErrorSchema,
            409: ErrorSchema,
          },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requirePermission(p, "delete_image");
        const force = parseFlag(req.query.force);
        const r = await d.images.delete(p.project, req.params.image_uuid.toLowerCase(), force);
        return {
          uuid: r.id,
          deleted: true as const,
          deleted_at: isoMicros(r.deletedAt),
          tags_removed: r.tagsRemoved,
        };
      },
    );

    app.delete(
      "/images/:image_uuid/tag",
      {
        schema: {
          summary: "Remove a tag (or every tag of the image in this project)",
          params: ImageParams,
          querystring: Type.Object({
            tag: Type.Optional({ ...TagTextSchema, "x-error": "tag must be at most 256 characters" }),
          }),
          response: { 200: Type.Ref(ImageSchema), 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requirePermission(p, "set_image_tag");
        const tag = req.query.tag === "" ? undefined : req.query.tag;
        if (tag !== undefined && tag.length > 256)
          throw invalidArgument("tag must be at most 256 characters");
        const img = await d.images.removeTag(p.project, req.params.image_uuid.toLowerCase(), tag);
        return imageJson(img, await d.images.tagOf(p.project, img));
      },
    );
  };
}
