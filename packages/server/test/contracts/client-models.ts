/**
 * The strictest official clients' view of every response, as JSON Schema (TypeBox), from
 * /work/shared/docs/contree-api.md §3 and §5.4:
 *
 * - Go client (CLIENT-GO `models.gen.go`): required fields must be present and non-null, ints
 *   must be integers (a float in an int field fails `encoding/json`).
 * - contree-mcp pydantic models (`backend_types.py`): string `created_at`, numeric `duration`,
 *   stdin an object, both stdout and stderr present in a result, credentials an object or absent,
 *   positive int timeouts, string file modes, stream encodings `ascii`/`base64` only.
 *
 * Extra fields are always allowed (every client ignores unknown keys). `checkModel` returns
 * readable violations ("$.metadata.result.stdout: required property") instead of throwing, so a
 * caller can report every regression of a response at once.
 */
import { FormatRegistry, type TSchema, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

/** RFC 3339 with 3 or 6 fraction digits (Python 3.10's `fromisoformat` in the CLI takes no other). */
export const MODEL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?(Z|[+-]\d\d:\d\d)$/;
/** RFC 3339 as Go's time.Time reads it (event `ts` may carry up to nanoseconds). */
export const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

if (!FormatRegistry.Has("contree-time")) FormatRegistry.Set("contree-time", (v) => MODEL_TIME.test(v));
if (!FormatRegistry.Has("rfc3339")) FormatRegistry.Set("rfc3339", (v) => RFC3339.test(v));
if (!FormatRegistry.Has("uuid-lower")) FormatRegistry.Set("uuid-lower", (v) => UUID.test(v));
if (!FormatRegistry.Has("sha256-hex")) FormatRegistry.Set("sha256-hex", (v) => /^[0-9a-f]{64}$/.test(v));

const Time = Type.String({ format: "contree-time" });
const EventTime = Type.String({ format: "rfc3339" });
const Uuid = Type.String({ format: "uuid-lower" });
const Int = Type.Integer();
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** Go `*T` / Python `Optional[T] = None`: key may be absent or null. */
const Opt = <T extends TSchema>(t: T) => Type.Optional(Nullable(t));

export const Status = Type.Union(
  ["PENDING", "ASSIGNED", "EXECUTING", "SUCCESS", "FAILED", "CANCELLED"].map((s) => Type.Literal(s)),
);
export const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];
const Kind = Type.Union([Type.Literal("instance"), Type.Literal("image_import")]);

// ---- errors (§1.5) ----------------------------------------------------------------------------
export const ErrorBody = Type.Object({
  error: Type.Unknown(),
  status: Int,
  traceback: Type.Optional(Type.Array(Type.String())),
});

// ---- whoami (§2.1, Go WhoAmIResponse) ---------------------------------------------------------
export const PERMISSIONS = [
  "list",
  "spawn",
  "spawn_disposable",
  "import",
  "cancel",
  "set_image_tag",
] as const;
export const WhoAmI = Type.Object({
  token_uuid: Type.String(),
  token_expiration: Nullable(Int),
  permissions: Type.Object(Object.fromEntries(PERMISSIONS.map((p) => [p, Type.Boolean()])), {
    additionalProperties: Type.Boolean(),
  }),
  limits: Type.Optional(Type.Record(Type.String(), Int)),
  operations_stat: Type.Record(Type.String(), Int),
});

// ---- images (§3.1: MCP) -----------------------------------------------------------------------
export const Image = Type.Object({
  uuid: Uuid,
  tag: Nullable(Type.String()),
  created_at: Time,
  operation_uuid: Opt(Uuid),
});
export const ImageList = Type.Object({ images: Type.Array(Image) });
/** Spawn and import answers: clients index `uuid` without a fallback. */
export const UuidAnswer = Type.Object({ uuid: Uuid });

// ---- files (§3.2: Go File / FileResponse, MCP sha256) -----------------------------------------
export const File = Type.Object({
  uuid: Uuid,
  sha256: Type.String({ format: "sha256-hex" }),
  size: Int,
  created_at: Time,
  updated_at: Time,
});
export const FileResponse = Type.Object({
  uuid: Uuid,
  sha256: Type.String({ format: "sha256-hex" }),
  size: Int,
});
export const FileList = Type.Object({ files: Type.Array(File) });

// ---- streams (§3.3) ---------------------------------------------------------------------------
export const StreamRepr = Type.Object({
  value: Type.String(),
  encoding: Type.Union([Type.Literal("ascii"), Type.Literal("base64")]),
  truncated: Type.Optional(Type.Boolean()),
});

// ---- InstanceResult (§3.6; subprocess GET and metadata.result) ---------------------------------
export const InstanceResult = Type.Object({
  state: Type.Object({
    exit_code: Int,
    signal: Int,
    pid: Int,
    timed_out: Type.Boolean(),
    stopped: Type.Boolean(),
    continued: Type.Boolean(),
    core_dump: Type.Boolean(),
  }),
  stdout: StreamRepr,
  stderr: StreamRepr,
  resources: Type.Optional(
    Type.Object({
      elapsed_time: Type.Optional(Type.Number()),
      monotonic_time: Type.Optional(Type.Number()),
      user_cpu_time: Type.Optional(Type.Number()),
      system_cpu_time: Type.Optional(Type.Number()),
      max_rss: Type.Optional(Int),
      cost: Type.Optional(Type.Number()),
      ...Object.fromEntries(
        [
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
        ].map((k) => [k, Type.Optional(Int)]),
      ),
    }),
  ),
});

// ---- operations (§3.4, §3.5) ------------------------------------------------------------------
const summaryFields = {
  uuid: Uuid,
  kind: Kind,
  status: Status,
  error: Opt(Type.String()),
  created_at: Time,
  duration: Type.Number(),
  image_uuid: Opt(Uuid),
  result_image_uuid: Opt(Uuid),
  image_size: Type.Optional(Int),
  consumed_cpu: Type.Optional(Type.Number()),
  consumed_memory: Type.Optional(Int),
  started_at: Opt(Time),
  finished_at: Opt(Time),
};
export const OperationSummary = Type.Object(summaryFields);
export const OperationList = Type.Array(OperationSummary);

/** MCP `InstanceMetadata` (non-null fields) + Go OperationInstanceMetadata (command, image). */
export const InstanceMetadata = Type.Object({
  command: Type.String(),
  image: Type.String(),
  args: Type.Array(Type.String()),
  env: Type.Record(Type.String(), Type.String()),
  shell: Type.Boolean(),
  disposable: Type.Boolean(),
  hostname: Type.String(),
  cwd: Type.String(),
  uid: Type.Optional(Int),
  gid: Type.Optional(Int),
  preserve_env: Type.Optional(Type.Boolean()),
  stdin: Type.Object({
    value: Type.String(),
    encoding: Type.Optional(Type.Union([Type.Literal("ascii"), Type.Literal("base64")])),
  }),
  timeout: Type.Integer({ minimum: 1 }),
  truncate_output_at: Int,
  files: Type.Record(
    Type.String(),
    Type.Object({ uuid: Uuid, mode: Type.String(), uid: Type.Optional(Int), gid: Type.Optional(Int) }),
  ),
  resources_limits: Type.Optional(Type.Object({ max_layer_bytes: Type.Optional(Int) })),
  networking: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()) })),
  result: Nullable(InstanceResult),
});

/** MCP `ImportImageMetadata`: credentials an object or absent (never null), timeout > 0. */
export const ImportMetadata = Type.Object({
  registry: Type.Object({
    url: Type.String(),
    credentials: Type.Optional(
      Type.Object({ username: Type.Optional(Type.String()), password: Type.Optional(Type.String()) }),
    ),
  }),
  tag: Opt(Type.String()),
  timeout: Type.Integer({ minimum: 1 }),
});

export const Operation = Type.Object({
  ...summaryFields,
  metadata: Type.Unknown(),
  result: Type.Object({ image: Nullable(Uuid), tag: Nullable(Type.String()) }),
});

// ---- inspect (§2.8, §3.9, Go DirectoryList / FileItem / Grep*) ---------------------------------
export const FileItem = Type.Object({
  path: Type.String(),
  size: Int,
  owner: Type.String(),
  group: Type.String(),
  uid: Int,
  gid: Int,
  mode: Int,
  mtime: Int,
  nlink: Int,
  is_dir: Type.Boolean(),
  is_regular: Type.Boolean(),
  is_symlink: Type.Boolean(),
  is_socket: Type.Boolean(),
  is_fifo: Type.Boolean(),
  symlink_to: Type.String(),
});
export const DirectoryList = Type.Object({ path: Type.String(), files: Type.Array(FileItem) });
export const GrepSubmatch = Type.Object({ text: Type.String(), start: Int, end: Int });
export const GrepMatch = Type.Object({
  path: Type.String(),
  line_number: Int,
  absolute_offset: Int,
  line_text: Type.String(),
  line_bytes: Int,
  submatches: Type.Array(GrepSubmatch),
  type: Type.Union([Type.Literal("match"), Type.Literal("context")]),
});
export const GrepResult = Type.Object({
  path: Type.String(),
  patterns: Type.Array(Type.String()),
  truncated: Type.Boolean(),
  matches: Type.Array(GrepMatch),
});

// ---- subprocesses (§2.7) ----------------------------------------------------------------------
export const SpawnedSubprocess = Type.Object({ spid: Type.Integer({ minimum: 2 }) });

// ---- events (§2.6, §3.7, §3.8) ----------------------------------------------------------------
export const OperationEvent = Type.Object({
  id: Type.Integer({ minimum: 0 }),
  ts: EventTime,
  spid: Type.Optional(Type.Integer({ minimum: 0 })),
  type: Type.String(),
  data: Type.Object({}),
});
export interface OperationEventT {
  id: number;
  ts: string;
  spid?: number;
  type: string;
  data: Record<string, unknown>;
}

export const EVENT_RESOURCE_FIELDS = [
  "user_time_us",
  "sys_time_us",
  "max_rss_kb",
  "shared_memory",
  "unshared_memory",
  "swaps",
  "minor_faults",
  "major_faults",
  "voluntary_ctx_switches",
  "involuntary_ctx_switches",
  "block_input_ops",
  "block_output_ops",
  "ipc_msgs_sent",
  "ipc_msgs_received",
  "signals_received",
] as const;
export const EventResources = Type.Object(Object.fromEntries(EVENT_RESOURCE_FIELDS.map((k) => [k, Int])));

const NetIf = Type.Object(
  Object.fromEntries([
    ["name", Type.String()],
    ...["rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop"].map(
      (k) => [k, Int],
    ),
  ]),
);

/** Payloads of the known event types; other types only need an object `data`. */
export const EVENT_DATA: Readonly<Record<string, TSchema>> = {
  init: Type.Object({
    started_at: EventTime,
    runtime_path: Type.String(),
    verbose: Type.Boolean(),
    init_pid: Int,
    hostname: Type.Optional(Type.String()),
    kernel: Type.Optional(Type.String()),
    machine: Type.Optional(Type.String()),
    boot_id: Type.Optional(Type.String()),
  }),
  network: Type.Object({
    interfaces: Type.Array(NetIf),
    configured: Type.Optional(Type.Object({})),
    error: Opt(Type.String()),
  }),
  spawn: Type.Object({
    pid: Int,
    command: Type.String(),
    args: Type.Array(Type.String()),
    shell: Type.Boolean(),
    cwd: Type.String(),
    uid: Int,
    gid: Int,
    timeout: Int,
    truncate_at: Int,
    env: Type.Optional(Type.Record(Type.String(), Type.String())),
  }),
  stdin: StreamRepr,
  stdout: StreamRepr,
  stderr: StreamRepr,
  truncated: Type.Object({
    stream: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]),
    bytes_emitted: Int,
    bytes_dropped: Int,
  }),
  size_cap: Type.Object({ limit_bytes: Int, file_size: Int }),
  exit: Type.Object({
    pid: Int,
    code: Int,
    signal: Int,
    timed_out: Type.Boolean(),
    duration_ms: Int,
    resources: EventResources,
    core_dump: Type.Optional(Type.Boolean()),
  }),
  shutdown: Type.Object({ stopped_at: EventTime, reason: Type.String() }),
  completion: Type.Object({
    status: Type.Union(TERMINAL.map((s) => Type.Literal(s))),
    duration_ms: Int,
    result_image_uuid: Opt(Uuid),
    error: Opt(Type.String()),
    image_size_bytes: Opt(Int),
  }),
};

/** Violations of `schema` by `value`, each "path: message"; empty when the value conforms. */
export function checkModel(schema: TSchema, value: unknown, where = "$"): string[] {
  if (Value.Check(schema, value)) return [];
  const out: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    out.push(
      `${where}${e.path.replace(/\//g, ".")}: ${e.message} (got ${JSON.stringify(e.value)?.slice(0, 80)})`,
    );
    if (out.length >= 20) break;
  }
  return out;
}

/** An instance operation document, with MCP's discriminated metadata (instance, else import). */
export function checkOperation(doc: unknown): string[] {
  const v = checkModel(Operation, doc);
  if (v.length > 0) return v;
  const d = doc as {
    kind: string;
    status: string;
    metadata: unknown;
    result_image_uuid?: string | null;
    result: { image: string | null };
  };
  if (d.kind === "instance") {
    v.push(...checkModel(InstanceMetadata, d.metadata, "$.metadata"));
    const result = (d.metadata as { result?: unknown }).result;
    // a finished instance run must carry its result (exit code and output are read from it)
    if (d.status === "SUCCESS" && (result === null || result === undefined))
      v.push("$.metadata.result: null for a SUCCESS instance");
  } else {
    v.push(...checkModel(ImportMetadata, d.metadata, "$.metadata"));
  }
  // CLI reads result.image, CONTREE-CLIENT/Go read result_image_uuid: they must agree
  if ((d.result_image_uuid ?? null) !== d.result.image)
    v.push(`$.result.image (${d.result.image}) != $.result_image_uuid (${d.result_image_uuid})`);
  return v;
}

/** An event envelope plus the payload model of its type. */
export function checkEvent(e: unknown): string[] {
  const v = checkModel(OperationEvent, e, "event");
  if (v.length > 0) return v;
  const ev = e as OperationEventT;
  const payload = EVENT_DATA[ev.type];
  return payload ? checkModel(payload, ev.data, `event[${ev.id}:${ev.type}].data`) : [];
}
