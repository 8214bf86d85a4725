import type { Readable } from "node:stream";
import { Type } from "@sinclair/typebox";
import { isoMicros } from "../../core/time.js";
import type { FileRecord } from "../../metadata/repos/file-repo.js";
import type { ApiApp } from "../api-app.js";
import { ErrorSchema, PageQuerySchema, parsePage } from "../pagination.js";
import { principalOf } from "../request-context.js";
import type { Services } from "../services.js";

const FileSchema = Type.Object(
  {
    uuid: Type.String(),
    sha256: Type.String(),
    size: Type.Integer(),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { $id: "File" },
);

function fileJson(f: FileRecord) {
  return {
    uuid: f.id,
    sha256: f.sha256,
    size: f.size,
    created_at: isoMicros(f.createdAt),
    updated_at: isoMicros(f.updatedAt),
  };
}

export function filesRoutes(deps: Services) {
  return async (app: ApiApp): Promise<void> => {
    const { files } = deps;
    app.addSchema(FileSchema);

    // Uploads are raw bytes whatever their Content-Type (MCP labels everything JSON): this scope
    // hands every body to the route as a stream, never parsed and never buffered.
    await app.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
      scope.post(
        "/files",
        {
          // Checked against Content-Length before the body is read (app.ts); streamed bodies are
          // counted by the file service.
          bodyLimit: Math.max(1, deps.config.maxUploadBytes),
          schema: {
            summary: "Upload a file (raw bytes, chunked or with Content-Length)",
            response: { 201: Type.Ref(FileSchema), 400: ErrorSchema, 413: ErrorSchema },
          },
        },
        async (req, reply) => {
          const p = principalOf(req);
          const body = (req.body as Readable | undefined) ?? req.raw;
          const f = await files.upload(p.project.id, body);
          return reply.code(201).send(fileJson(f));
        },
      );
    });

    app.get(
      "/files",
      {
        schema: {
          summary: "List uploaded files; with sha256= or uuid= answer one file or 404 (legacy form)",
          querystring: Type.Object({
            ...PageQuerySchema,
            sha256: Type.Optional(Type.String({ maxLength: 80 })),
            uuid: Type.Optional(Type.String({ maxLength: 64 })),
          }),
          response: {
            200: Type.Union([Type.Object({ files: Type.Array(Type.Ref(FileSchema)) }), Type.Ref(FileSchema)]),
            400: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        const p = principalOf(req);
        const q = req.query;
        if (q.sha256 !== undefined) return fileJson(await files.bySha(p.project.id, q.sha256));
        if (q.uuid !== undefined) return fileJson(await files.byId(p.project.id, q.uuid));
        const rows = await files.list(p.project.id, parsePage(q));
        return { files: rows.map(fileJson) };
      },
    );

    app.get(
      "/files/:sha256",
      {
        schema: {
          summary: "A file record by its content hash (HEAD: exists?)",
          params: Type.Object({ sha256: Type.String({ maxLength: 80 }) }),
          response: { 200: Type.Ref(FileSchema), 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (req) => fileJson(await files.bySha(principalOf(req).project.id, req.params.sha256)),
    );
  };
}
