import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { requirePermission } from "../../auth/principal.js";
import { invalidArgument } from "../../core/errors.js";
import { isUuid } from "../../core/ids.js";
import { parseFlag } from "../../core/time.js";
import { chainRelation, diffPrefix } from "../../inspect/diff.js";
import type { CaseMode, DirectoryListing, ImageFs } from "../../inspect/inspect-service.js";
import type { ImageRecord } from "../../metadata/repos/image-repo.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema, FlagSchema } from "../pagination.js";
import { IdParamSchema, ImagePathSchema, TagTextSchema } from "../params.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";
import { listingJson, sendStream } from "../stream-reply.js";
import { ImageSchema, imageJson } from "../views/image-view.js";

const Params = Type.Object({ image_uuid: IdParamSchema });
const PathQuery = Type.Object({ path: Type.Optional(ImagePathSchema) });
/** Repeatable query parameter: one value or several (at most 64, like grep's own caps). */
const Many = (item: ReturnType<typeof Type.String>) =>
  Type.Optional(Type.Union([item, Type.Array(item, { maxItems: 64 })]));
/** A count 0..max; empty means "not given", as it always has. */
const Count = (max: number, what: string) => {
  const message = `${what} must be an integer 0..${max}`;
  return Type.Optional(
    Type.Union([
      Type.Literal("", { "x-error": message }),
      Type.Integer({ minimum: 0, maximum: max, description: what, "x-error": message }),
    ]),
  );
};
const count = (v: number | "" | undefined): number | undefined => (v === "" ? undefined : v);

const FileItemSchema = Type.Object(
  {
    path: Type.String(),
    size: Type.Integer(),
    owner: Type.String(),
    group: Type.String(),
    uid: Type.Integer(),
    gid: Type.Integer(),
    mode: Type.Integer(),
    mtime: Type.Integer(),
    nlink: Type.Integer(),
    is_dir: Type.Boolean(),
    is_regular: Type.Boolean(),
    is_symlink: Type.Boolean(),
    is_socket: Type.Boolean(),
    is_fifo: Type.Boolean(),
    symlink_to: Type.String(),
  },
  { $id: "FileItem" },
);

const SubmatchSchema = Type.Object({ text: Type.String(), start: Type.Integer(), end: Type.Integer() });
const GrepMatchSchema = Type.Object({
  path: Type.String(),
  line_number: Type.Integer(),
  absolute_offset: Type.Integer(),
  line_text: Type.String(),
  line_bytes: Type.Integer(),
  submatches: Type.Array(SubmatchSchema),
  type: Type.Union([Type.Literal("match"), Type.Literal("context")]),
});

const DiffSideSchema = Type.Object({
  type: Type.String({ description: "file, dir, symlink, char, block, fifo or socket" }),
  size: Type.Integer(),
  mode: Type.Integer(),
  uid: Type.Integer(),
  gid: Type.Integer(),
  symlink_to: Type.Optional(Type.String()),
});
const DiffEntrySchema = Type.Object({
  path: Type.String(),
  status: Type.Union([Type.Literal("added"), Type.Literal("removed"), Type.Literal("changed")]),
  changes: Type.Optional(
    Type.Array(Type.String({ description: "type, size, mode, owner, target or content" })),
  ),
  old: Type.Optional(DiffSideSchema),
  new: Type.Optional(DiffSideSchema),
  diff: Type.Optional(Type.String({ description: "unified diff of a small text file (text=1)" })),
  diff_omitted: Type.Optional(Type.String({ description: "binary, file_size, total or edits" })),
});
const DIFF_DEFAULT_LIMIT = 10_000;
const DIFF_MAX_LIMIT = 100_000;

const CASES: readonly CaseMode[] = ["sensitive", "insensitive", "smart"];
/** Listings with more entries are streamed a few hundred rows at a time. */
const STREAM_LISTING_FROM = 2000;

function many(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Downloads, archives and greps are heavy: in flight per token/project is capped (`gate`). */
export function inspectRoutes(d: Services) {
  return async (app: ApiApp): Promise<void> => {
    const { inspect } = d;
    app.addSchema(FileItemSchema);
    if (!app.getSchema("Image")) app.addSchema(ImageSchema);

    /** The image's view, leased until the response is over (sent, streamed out, or cut off). */
    const imageFs = async (req: FastifyRequest, reply: FastifyReply, uuid: string): Promise<ImageFs> => {
      const p = principalOf(req);
      requirePermission(p, "list");
      const img = await d.images.get(p.project, uuid.toLowerCase());
      return leasedView(req, reply, img);
    };
    const leasedView = async (
      req: FastifyRequest,
      reply: FastifyReply,
      img: ImageRecord,
    ): Promise<ImageFs> => {
      void d.images.touch(img.id); // retention: reading an image is a use of it
      const view = await d.snapshots.view(img);
      reply.raw.once("close", () => {
        view.release().catch((err: unknown) => req.log.warn({ err }, "inspect lease release failed"));
      });
      return view;
    };

    app.get(
      "/inspect/",
      {
        schema: {
          summary: "Find an image by tag: 302 to its inspect URL (project tag first, then public)",
          querystring: Type.Object({ tag: Type.Optional(TagTextSchema) }),
          response: {
            302: Type.Null({ description: "Location: <uuid>/" }),
            400: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const tag = req.query.tag ?? "";
        if (tag === "") throw invalidArgument("tag is required");
        const img = await d.images.byTag(p.project, tag);
        // Relative, so it resolves under any path prefix; without the trailing slash the last
        // segment ("inspect") is replaced when resolving, so it has to be repeated.
        const path = req.url.split("?")[0] ?? "";
        const location = path.endsWith("/") ? `${img.id}/` : `inspect/${img.id}/`;
        return reply.redirect(location, 302);
      },
    );

    app.get(
      "/inspect/:image_uuid/",
      {
        schema: {
          summary: "Image record",
          params: Params,
          response: { 200: Type.Ref(ImageSchema), 404: ErrorSchema },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const img = await d.images.get(p.project, req.params.image_uuid.toLowerCase());
        void d.images.touch(img.id); // retention: inspecting an image is a use of it
        return imageJson(img, await d.images.tagOf(p.project, img));
      },
    );

    app.get(
      "/inspect/:image_uuid/list",
      {
        schema: {
          summary: "List a directory of the image (JSON, or ls -l-like text with `text`)",
          params: Params,
          querystring: Type.Object({ path: Type.Optional(ImagePathSchema), text: FlagSchema }),
          response: {
            // Not a union with the text form: an anyOf serializer validates every response
            // (~3 ms for /bin); a string payload with a text type bypasses the serializer anyway.
            200: Type.Object({ path: Type.String(), files: Type.Array(Type.Ref(FileItemSchema)) }),
            404: ErrorSchema,
            422: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const fs = await imageFs(req, reply, req.params.image_uuid);
        // Gated before listing: a huge directory is heavy to list, not only to send.
        d.gate.hold(principalOf(req), reply);
        const listing = await inspect.list(fs, req.query.path);
        const big = listing.files.length >= STREAM_LISTING_FROM;
        if (req.query.text !== undefined && parseFlag(req.query.text)) {
          if (big)
            return sendStream(req, reply, "text/plain; charset=utf-8", inspect.listTextChunks(listing, 500));
          const text: unknown = inspect.listText(listing);
          return reply.type("text/plain; charset=utf-8").send(text as DirectoryListing);
        }
        return big
          ? sendStream(req, reply, "application/json; charset=utf-8", listingJson(listing))
          : listing;
      },
    );

    const download = async (
      req: FastifyRequest<{ Params: { image_uuid: string }; Querystring: { path?: string } }>,
      reply: FastifyReply,
    ) => {
      const fs = await imageFs(req, reply, req.params.image_uuid);
      const path = req.query.path ?? "";
      d.gate.hold(principalOf(req), reply);
      if (req.method === "HEAD") {
        const { size } = await inspect.statFile(fs, path);
        return reply.type("application/octet-stream").header("content-length", String(size)).send();
      }
      const { stream, size } = await inspect.openFile(fs, path);
      return reply.type("application/octet-stream").header("content-length", String(size)).send(stream);
    };
    const downloadSchema = {
      summary: "Download a file of the image (symlinks followed inside the image)",
      params: Params,
      querystring: PathQuery,
      response: { 404: ErrorSchema, 422: ErrorSchema },
    };
    app.get("/inspect/:image_uuid/download", { exposeHeadRoute: false, schema: downloadSchema }, download);
    app.head("/inspect/:image_uuid/download", { schema: { ...downloadSchema, hide: true } }, download);

    const archive = async (
      req: FastifyRequest<{ Params: { image_uuid: string }; Querystring: { path?: string } }>,
      reply: FastifyReply,
    ) => {
      const fs = await imageFs(req, reply, req.params.image_uuid);
      const path = req.query.path ?? "/";
      d.gate.hold(principalOf(req), reply);
      void reply.type("application/x-tar");
      if (req.method === "HEAD") {
        await inspect.checkPath(fs, path);
        return reply.send();
      }
      return reply.send(await inspect.archive(fs, path));
    };
    const archiveSchema = {
      summary: "PAX tar of a path and everything below it (member names relative to /)",
      params: Params,
      querystring: PathQuery,
      response: { 404: ErrorSchema },
    };
    app.get("/inspect/:image_uuid/archive", { exposeHeadRoute: false, schema: archiveSchema }, archive);
    app.head("/inspect/:image_uuid/archive", { schema: { ...archiveSchema, hide: true } }, archive);

    app.get(
      "/inspect/:image_uuid/grep",
      {
        schema: {
          summary: "Search file contents (Rust regex syntax; bounded by a deadline and output caps)",
          params: Params,
          querystring: Type.Object({
            pattern: Many(Type.String({ maxLength: 4096 })),
            path: Many(ImagePathSchema),
            glob: Many(Type.String({ maxLength: 1024 })),
            max_count: Count(1_000_000_000, "max_count"),
            max_total: Count(1_000_000_000, "max_total"),
            case: Type.Optional(Type.String({ maxLength: 16 })),
            before: Count(1000, "before"),
            after: Count(1000, "after"),
          }),
          response: {
            200: Type.Object({
              path: Type.String(),
              paths: Type.Array(Type.String()),
              patterns: Type.Array(Type.String()),
              truncated: Type.Boolean(),
              truncated_reason: Type.Optional(
                Type.String({
                  description:
                    "extension: what cut the search short (deadline, busy, depth, entries, file_size, scan_bytes, output, max_total, max_count)",
                }),
              ),
              matches: Type.Array(GrepMatchSchema),
            }),
            400: ErrorSchema,
            404: ErrorSchema,
            429: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const fs = await imageFs(req, reply, req.params.image_uuid);
        d.gate.hold(principalOf(req), reply);
        const q = req.query;
        const patterns = many(q.pattern);
        if (patterns.length === 0) throw invalidArgument("pattern is required");
        const caseMode = (
          q.case === undefined || q.case === "" ? "sensitive" : q.case.toLowerCase()
        ) as CaseMode;
        if (!CASES.includes(caseMode)) throw invalidArgument(`case must be one of ${CASES.join(", ")}`);
        return inspect.grep(
          fs,
          {
            patterns,
            paths: many(q.path),
            globs: many(q.glob),
            maxCount: count(q.max_count),
            maxTotal: count(q.max_total),
            caseMode,
            before: count(q.before) ?? 0,
            after: count(q.after) ?? 0,
          },
          principalOf(req).project.id,
        );
      },
    );
    app.get(
      "/inspect/:image_uuid/diff",
      {
        schema: {
          summary:
            "extension: what changed from `against` (default: the parent) to this image, streamed in path order; bounded by `limit`, a deadline and depth",
          params: Params,
          querystring: Type.Object({
            against: Type.Optional(
              Type.String({ maxLength: 64, description: "UUID of the image to compare with" }),
            ),
            path: Type.Optional(ImagePathSchema),
            text: FlagSchema,
            limit: Count(DIFF_MAX_LIMIT, "limit"),
          }),
          response: {
            200: Type.Object({
              image: Type.String(),
              against: Type.String(),
              path: Type.String(),
              entries: Type.Array(DiffEntrySchema),
              walk: Type.String({
                description: "layers: only the layers between the images; full: both trees",
              }),
              truncated: Type.Boolean(),
              truncated_reason: Type.Optional(
                Type.String({ description: "limit, deadline, depth or compare_bytes" }),
              ),
            }),
            400: ErrorSchema,
            404: ErrorSchema,
            429: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        requirePermission(p, "list");
        const q = req.query;
        const path = diffPrefix(q.path);
        const limit = count(q.limit) ?? DIFF_DEFAULT_LIMIT;
        if (limit === 0) throw invalidArgument(`limit must be an integer 1..${DIFF_MAX_LIMIT}`);
        if (q.against !== undefined && !isUuid(q.against.toLowerCase()))
          throw invalidArgument("against must be an image UUID");
        const img = await d.images.get(p.project, req.params.image_uuid.toLowerCase());
        const againstId = q.against?.toLowerCase() ?? img.parentId;
        if (againstId === null)
          throw invalidArgument("the image has no parent: name the image to compare with in `against`");
        const other = await d.images.get(p.project, againstId);
        d.gate.hold(p, reply);
        const newer = await leasedView(req, reply, img);
        const older = await leasedView(req, reply, other);
        const { entries, outcome } = await inspect.diff(older, newer, {
          path,
          text: q.text !== undefined && parseFlag(q.text),
          limit,
          upper: chainRelation(other.mountChain, img.mountChain),
        });
        const head = `{"image":${JSON.stringify(img.id)},"against":${JSON.stringify(other.id)},"path":${JSON.stringify(path)},"entries":[`;
        async function* pieces(): AsyncGenerator<string> {
          yield head;
          let n = 0;
          let batch: string[] = [];
          for await (const e of entries) {
            batch.push(JSON.stringify(e));
            if (batch.length >= 200) {
              yield `${n === 0 ? "" : ","}${batch.join(",")}`;
              n += batch.length;
              batch = [];
            }
          }
          if (batch.length > 0) yield `${n === 0 ? "" : ","}${batch.join(",")}`;
          const reason = outcome.truncatedReason
            ? `,"truncated_reason":${JSON.stringify(outcome.truncatedReason)}`
            : "";
          yield `],"walk":"${outcome.walk}","truncated":${outcome.truncated}${reason}}`;
        }
        return sendStream(req, reply, "application/json; charset=utf-8", pieces());
      },
    );
  };
}
