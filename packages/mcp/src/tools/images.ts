import { z } from "zod";
import { type Json, operationResponse } from "../contree-api.js";
import { ok, type ToolContext } from "../tool-kit.js";

export function imageSummary(img: Json): Json {
  return { uuid: img["uuid"], tag: img["tag"] ?? null, created_at: img["created_at"] ?? "" };
}

export function registerImageTools(ctx: ToolContext): void {
  const { server, api } = ctx;

  server.registerTool(
    "contree_list_images",
    {
      description:
        'List images of this project (free, no sandbox). Look here before importing: an existing tag or UUID saves the most expensive step. Filter with tag_prefix (e.g. "common/python"). Returns images[] with uuid, tag, created_at.',
      inputSchema: {
        limit: z.number().int().min(1).max(1000).default(100),
        offset: z.number().int().min(0).default(0),
        tagged: z.boolean().optional(),
        tag_prefix: z.string().max(256).optional(),
        since: z.string().max(64).optional(),
        until: z.string().max(64).optional(),
      },
    },
    async (a) => {
      const tag = a.tag_prefix?.replace(/[:/.]+$/, "");
      const doc = await api.json({
        method: "GET",
        path: "/v1/images",
        query: {
          limit: a.limit,
          offset: a.offset,
          tagged: a.tagged === undefined ? undefined : a.tagged ? "1" : "0",
          tag: tag || undefined,
          since: a.since,
          until: a.until,
        },
      });
      const rows = (Array.isArray(doc) ? doc : (doc["images"] as Json[] | undefined)) ?? [];
      return ok({ images: rows.map(imageSummary) });
    },
  );

  server.registerTool(
    "contree_get_image",
    {
      description:
        'Image details by UUID or by tag written "tag:NAME" (free, no sandbox). Use it to check an image exists or to turn a tag into a UUID. Returns uuid, tag, created_at.',
      inputSchema: { image: z.string().min(1).max(300) },
    },
    async (a) => ok(imageSummary(await api.image(await api.resolveImage(a.image)))),
  );

  server.registerTool(
    "contree_set_tag",
    {
      description:
        "Tag an image so later sessions find it, or remove its tag by omitting tag (free, no sandbox). Convention: {scope}/{purpose}/{base}, e.g. common/python-ml/python:3.11-slim. Returns uuid, tag, created_at.",
      inputSchema: { image_uuid: z.string().uuid(), tag: z.string().max(256).optional() },
    },
    async (a) => {
      const uuid = a.image_uuid.toLowerCase();
      if (a.tag) {
        const img = await api.json({ method: "PATCH", path: `/v1/images/${uuid}/tag`, json: { tag: a.tag } });
        return ok(imageSummary(img));
      }
      await api.raw({ method: "DELETE", path: `/v1/images/${uuid}/tag` });
      return ok(imageSummary(await api.image(uuid)));
    },
  );

  server.registerTool(
    "contree_import_image",
    {
      description:
        'Import an OCI image from a registry, e.g. registry_url="docker://docker.io/library/alpine:latest" (slow and costly: check contree_list_images first). No registry credentials are stored by this server, so set i_accept_that_anonymous_access_might_be_rate_limited=true to pull anonymously. With wait=false returns {operation_id}; otherwise the finished operation (result.image is the new image).',
      inputSchema: {
        registry_url: z.string().min(1).max(2048),
        tag: z.string().max(256).optional(),
        wait: z.boolean().default(true),
        i_accept_that_anonymous_access_might_be_rate_limited: z.boolean().default(false),
      },
    },
    async (a, extra) => {
      if (!a.i_accept_that_anonymous_access_might_be_rate_limited)
        throw new Error(
          `no registry credentials are stored for ${JSON.stringify(a.registry_url)}; call again with i_accept_that_anonymous_access_might_be_rate_limited=true to import anonymously`,
        );
      const op = await api.json({
        method: "POST",
        path: "/v1/images/import",
        json: {
          registry: { url: a.registry_url, credentials: { username: "", password: "" } },
          ...(a.tag ? { tag: a.tag } : {}),
          timeout: 300,
        },
      });
      const id = String(op["uuid"]);
      if (!a.wait) return ok({ operation_id: id });
      return ok(operationResponse(await api.waitOperation(id, { signal: extra.signal })));
    },
  );
}
