import { type TSchema, Type } from "@sinclair/typebox";
import { Dict } from "../../core/schema.js";

/**
 * The nested shapes of operation documents, for the OpenAPI document only. The routes serialise
 * `metadata` and a process's result as opaque objects (their schemas are not the serialiser's:
 * a stored document of an older server must come back as stored), so these describe what
 * `normalizeSpawn`, the import handler and `ProcessSupervisor.result()` produce, and
 * `documentOperationShapes` hangs them into the generated document: `Operation.metadata` per kind,
 * the subprocess GET's answer. The SDK's drift test holds them against real documents.
 */

const StreamReprDoc = Type.Object(
  {
    value: Type.String(),
    encoding: Type.Union([Type.Literal("ascii"), Type.Literal("base64")]),
    truncated: Type.Optional(Type.Boolean({ description: "the capture hit truncate_output_at" })),
  },
  { additionalProperties: true },
);

const ProcessStateDoc = Type.Object(
  {
    exit_code: Type.Integer({ description: "-1 while running or when killed by a signal" }),
    signal: Type.Integer({ description: "-1 when not killed by a signal" }),
    pid: Type.Integer(),
    timed_out: Type.Boolean(),
    stopped: Type.Boolean(),
    continued: Type.Boolean(),
    core_dump: Type.Boolean(),
    oom_killed: Type.Optional(Type.Boolean()),
    running: Type.Optional(Type.Boolean({ description: "subprocess GET only: whether it still runs" })),
  },
  { additionalProperties: true },
);

const ResourcesDoc = Type.Object(
  Object.fromEntries(
    [
      "elapsed_time",
      "monotonic_time",
      "user_cpu_time",
      "system_cpu_time",
      "max_rss",
      "cost",
      "block_input",
      "block_output",
      "page_faults",
      "page_faults_io",
      "shared_memory",
      "unshared_memory",
      "signals",
      "swaps",
      "voluntary_switches",
      "involuntary_switches",
    ].map((k) => [k, Type.Number()]),
  ),
  { additionalProperties: true },
);

export const InstanceResultDoc = Type.Object(
  { state: ProcessStateDoc, stdout: StreamReprDoc, stderr: StreamReprDoc, resources: ResourcesDoc },
  { title: "InstanceResult", additionalProperties: true },
);

const REF = "#/components/schemas/";

export const InstanceMetadataDoc = Type.Object(
  {
    command: Type.String(),
    image: Type.String({ description: 'as sent: image UUID or "tag:NAME"' }),
    args: Type.Array(Type.String()),
    shell: Type.Boolean(),
    env: Dict(Type.String()),
    preserve_env: Type.Boolean(),
    cwd: Type.String(),
    hostname: Type.String(),
    uid: Type.Integer(),
    gid: Type.Integer(),
    disposable: Type.Boolean(),
    stdin: Type.Object(
      {
        value: Type.String(),
        encoding: Type.Union([Type.Literal("ascii"), Type.Literal("base64")]),
        close: Type.Boolean(),
      },
      { additionalProperties: true },
    ),
    timeout: Type.Integer({ description: "seconds" }),
    truncate_output_at: Type.Integer({ description: "bytes per stream" }),
    files: Dict(
      Type.Object(
        { uuid: Type.String(), uid: Type.Integer(), gid: Type.Integer(), mode: Type.String() },
        { additionalProperties: true },
      ),
    ),
    resources_limits: Type.Object({ max_layer_bytes: Type.Integer() }, { additionalProperties: true }),
    networking: Type.Object(
      {
        enabled: Type.Boolean(),
        allow: Type.Optional(
          Type.Array(Type.String(), {
            description: "extension: the run's egress allow list, canonical (docs/egress.md)",
            "x-contree-extension": true,
          }),
        ),
        deny: Type.Optional(
          Type.Array(Type.String(), {
            description: "extension: the run's egress deny list, canonical (docs/egress.md)",
            "x-contree-extension": true,
          }),
        ),
      },
      { additionalProperties: true },
    ),
    tty: Type.Optional(
      Type.Boolean({ description: "extension: present (true) only for a run with a terminal" }),
    ),
    rows: Type.Optional(
      Type.Integer({ description: "extension: terminal rows when the process starts; tty only" }),
    ),
    cols: Type.Optional(
      Type.Integer({ description: "extension: terminal columns when the process starts; tty only" }),
    ),
    result: Type.Union([Type.Unsafe({ $ref: `${REF}InstanceResult` }), Type.Null()], {
      description: "null until the main process has ended",
    }),
    secrets: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String(),
            env: Type.String(),
            header: Type.Optional(
              Type.Object({ host: Type.String(), name: Type.String() }, { additionalProperties: true }),
            ),
          },
          { additionalProperties: true },
        ),
        { description: "extension: the project secrets the run named (names only, never values)" },
      ),
    ),
    commit_refused: Type.Optional(
      Type.Object(
        {
          reason: Type.Literal("secret"),
          secret: Type.String(),
          path: Type.String({ description: "where in the sandbox's filesystem (for a name: its directory)" }),
          encoding: Type.Union([
            Type.Literal("raw"),
            Type.Literal("base64"),
            Type.Literal("base64url"),
            Type.Literal("hex"),
          ]),
        },
        {
          additionalProperties: true,
          description: "extension: why no image was made although the run wrote files (docs/secrets.md)",
        },
      ),
    ),
  },
  { title: "OperationInstanceMetadata", additionalProperties: true },
);

export const ImportMetadataDoc = Type.Object(
  {
    registry: Type.Object(
      {
        url: Type.String(),
        credentials: Type.Optional(
          Type.Object(
            { username: Type.String(), password: Type.String({ description: "always masked" }) },
            { additionalProperties: true },
          ),
        ),
      },
      { additionalProperties: true },
    ),
    tag: Type.Union([Type.String(), Type.Null()]),
    timeout: Type.Integer({ description: "seconds" }),
  },
  { title: "ImageImportMetadata", additionalProperties: true },
);

type Json = Record<string, unknown>;

/** Plain JSON (TypeBox schemas carry symbol keys). */
const json = (s: TSchema): Record<string, unknown> =>
  JSON.parse(JSON.stringify(s)) as Record<string, unknown>;

/** Adds the nested shapes above to the generated document (swagger's `transformObject`). */
export function documentOperationShapes<T extends object>(doc: T): T {
  const d = doc as { components?: { schemas?: Record<string, Json> }; paths?: Record<string, Json> };
  const components = d.components ?? {};
  const schemas = components.schemas ?? {};
  components.schemas = schemas;
  d.components = components;
  schemas["InstanceResult"] = json(InstanceResultDoc);
  schemas["OperationInstanceMetadata"] = json(InstanceMetadataDoc);
  schemas["ImageImportMetadata"] = json(ImportMetadataDoc);
  const operation = Object.values(schemas).find((s) => s["title"] === "Operation");
  const props = operation?.["properties"] as Json | undefined;
  if (props) {
    props["metadata"] = {
      description: "by kind: OperationInstanceMetadata (instance), ImageImportMetadata (image_import)",
      anyOf: [{ $ref: `${REF}OperationInstanceMetadata` }, { $ref: `${REF}ImageImportMetadata` }],
    };
  }
  for (const [path, methods] of Object.entries(d.paths ?? {})) {
    if (!path.endsWith("/v1/operations/{operation_id}/subprocesses/{spid}")) continue;
    const get = methods["get"] as { responses?: Record<string, { content?: Json }> } | undefined;
    const content = get?.responses?.["200"]?.content;
    if (content) content["application/json"] = { schema: { $ref: `${REF}InstanceResult` } };
  }
  return doc;
}
