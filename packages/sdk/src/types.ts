// Wire types of the ConTree v1 API, hand-written from docs/contree-api.md (sections 2 and 3).
// Field names are exactly the wire names (snake_case); CI will later diff these against the server's
// GET /v1/openapi.json. Where the wire schema name would shadow a platform global (`File`, `Error`)
// the interface carries a suffix and a note.

export type Uuid = string;
/** RFC 3339 timestamp string in UTC. */
export type Timestamp = string;

/** Error body (wire schema `Error`): `error` is usually a string but may be any JSON value. */
export interface ApiErrorBody {
  error: unknown;
  status?: number;
  traceback?: string[];
}

// ---------------------------------------------------------------- whoami

export interface WhoAmIResponse {
  token_uuid: string;
  /** Unix seconds, or null when the token never expires. */
  token_expiration: number | null;
  /** Project the token belongs to (extension). */
  project?: string;
  permissions: Record<string, boolean>;
  limits?: Record<string, number>;
  operations_stat: Record<string, number>;
  /** An admin token: any project via the `Project` header, and `client.admin` (extension). */
  admin?: boolean;
  /** The project's egress rules, which every networked run gets and may only narrow (extension). */
  egress?: { allow?: string[]; deny?: string[] };
}

// ---------------------------------------------------------------- images

export interface Image {
  uuid: Uuid;
  tag: string | null;
  created_at: Timestamp;
  /** Operation that produced the image; null for seeded/public images. */
  operation_uuid?: Uuid | null;
  /** The image this one was run from (extension: not every server sends it). */
  parent_uuid?: Uuid | null;
  /** Bytes (extension). */
  size?: number;
  /** True when `parent_uuid` names a deleted image (extension; absent otherwise). */
  parent_deleted?: boolean;
}

/** Answer of `DELETE /v1/images/{uuid}` (extension). */
export interface ImageDeleteResponse {
  uuid: Uuid;
  deleted: true;
  deleted_at: Timestamp;
  /** The tags `force` removed. */
  tags_removed: string[];
}

export interface ImageDeleteQuery {
  /** Also remove the image's tags (without it a tagged image is refused with 409). */
  force?: boolean;
}

export interface ImageList {
  images: Image[];
}

/** `since`/`until`: ISO string, relative duration ("15m", "2h", "3d"), seconds, or a Date. */
export type TimeFilter = string | number | Date;

export interface ListImagesQuery {
  limit?: number;
  offset?: number;
  tagged?: boolean;
  /** Tag prefix; an exact match is listed first. */
  tag?: string;
  uuid?: Uuid;
  since?: TimeFilter;
  until?: TimeFilter;
}

export interface RegistryCredentials {
  username?: string;
  password?: string;
}

export interface ImageImportRequest {
  registry: { url: string; credentials?: RegistryCredentials };
  tag?: string | null;
  /** Seconds. */
  timeout?: number;
}

/** Body of 202 answers that start an operation (import; spawn adds an echo of the request). */
export interface OperationCreatedResponse {
  uuid: Uuid;
  status?: OperationStatus;
}

export interface ImageTagRequest {
  tag: string;
}

// ---------------------------------------------------------------- files

/** Upload answer (wire schema `FileResponse`). */
export interface FileResponse {
  uuid: Uuid;
  sha256: string;
  size: number;
}

/** Stored file record (wire schema `File`). */
export interface FileInfo {
  uuid: Uuid;
  sha256: string;
  size: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface FileList {
  files: FileInfo[];
}

export interface ListFilesQuery {
  limit?: number;
  offset?: number;
  since?: TimeFilter;
  until?: TimeFilter;
}

// ---------------------------------------------------------------- streams

export type StreamEncoding = "ascii" | "base64";

export interface StreamRepr {
  value: string;
  encoding: StreamEncoding;
  truncated?: boolean;
}

export interface ClosableStreamRepr {
  value: string;
  encoding?: StreamEncoding;
  /** Close stdin after writing `value`. */
  close?: boolean;
}

// ---------------------------------------------------------------- instances

export interface FileSpec {
  uuid: Uuid;
  uid?: number;
  gid?: number;
  /** Octal string such as "0644" (integers are accepted by the server too). */
  mode?: string | number;
}

export interface InstanceSpawnRequest {
  command: string;
  /** Image UUID or `tag:NAME`. */
  image: string;
  args?: string[];
  shell?: boolean;
  env?: Record<string, string>;
  preserve_env?: boolean;
  cwd?: string;
  hostname?: string;
  uid?: number;
  gid?: number;
  disposable?: boolean;
  stdin?: ClosableStreamRepr;
  /** Seconds. */
  timeout?: number;
  /** Bytes captured per stream. */
  truncate_output_at?: number;
  files?: Record<string, FileSpec>;
  resources_limits?: { max_layer_bytes?: number };
  networking?: NetworkingSpec;
  /**
   * Extension: a pseudo-terminal for the process (docs/terminals.md). One output stream, recorded
   * as stdout; stdin stays open for typing unless `stdin` is given. `terminal()` attaches to it.
   */
  tty?: boolean;
  /** Terminal rows at start with `tty: true` (1–1000, default 24). */
  rows?: number;
  /** Terminal columns at start with `tty: true` (1–1000, default 80). */
  cols?: number;
  /**
   * Extension: project secrets the run may use (stored by an admin; docs/secrets.md). Without
   * `header` the variable `env` holds the real value and a commit whose writes hold it is
   * refused; with `header` it holds a placeholder that the server replaces inside that header
   * of plain-HTTP requests to `host` (needs `networking.enabled`).
   */
  secrets?: SecretUse[];
}

/** A project secret named by a run (the value never travels through the API). */
export interface SecretUse {
  name: string;
  /** The environment variable that carries the value (env mode) or the placeholder (header mode). */
  env: string;
  /** Header mode: host name (or `*.domain`) and header name in whose requests the value is put. */
  header?: { host: string; name: string };
}

/** Why a run that wrote files made no image: its writes held a secret's value (extension). */
export interface CommitRefused {
  reason: "secret";
  secret: string;
  /** In the sandbox's filesystem (for a file name holding it: its directory). */
  path: string;
  /** How the value was written: `raw`, `base64`, `base64url` or `hex` (text). */
  encoding: string;
}

/**
 * Outbound networking of a run. Extension: `allow` (when given, only these destinations) and
 * `deny` (refused even when allowed): domains (`api.example.com`, `*.example.com` for every name
 * below it) and IPv4 CIDRs (`203.0.113.0/24`, or one address). Private ranges and the host stay
 * unreachable either way. Each refused destination is an `egress_denied` event (docs/egress.md).
 */
export interface NetworkingSpec {
  enabled: boolean;
  allow?: string[];
  deny?: string[];
}

export interface InstanceSpawnResponse extends Partial<Omit<InstanceSpawnRequest, "image" | "command">> {
  uuid: Uuid;
  status?: OperationStatus;
  command?: string;
  image?: string;
}

// ---------------------------------------------------------------- operations

export type OperationStatus = "PENDING" | "ASSIGNED" | "EXECUTING" | "SUCCESS" | "FAILED" | "CANCELLED";
export type OperationKind = "instance" | "image_import";

export const TERMINAL_STATUSES: readonly OperationStatus[] = ["SUCCESS", "FAILED", "CANCELLED"];

export interface OperationSummary {
  uuid: Uuid;
  kind: OperationKind;
  status: OperationStatus;
  error?: string | null;
  created_at: Timestamp;
  started_at?: Timestamp | null;
  finished_at?: Timestamp | null;
  /** Seconds (elapsed so far while running). */
  duration?: number;
  image_uuid?: Uuid | null;
  result_image_uuid?: Uuid | null;
  image_size?: number;
  consumed_cpu?: number;
  consumed_memory?: number;
  /** True when `image_uuid` names a deleted image (extension; absent otherwise). */
  image_deleted?: boolean;
  /** True when `result_image_uuid` names a deleted image (extension; absent otherwise). */
  result_image_deleted?: boolean;
}

export interface ListOperationsQuery {
  limit?: number;
  offset?: number;
  status?: OperationStatus;
  kind?: OperationKind;
  since?: TimeFilter;
  until?: TimeFilter;
}

export interface ProcessState {
  exit_code: number;
  /** -1 when not killed by a signal. */
  signal: number;
  pid: number;
  timed_out: boolean;
  stopped?: boolean;
  continued?: boolean;
  core_dump?: boolean;
  oom_killed?: boolean;
  /** Whether the process still runs (subprocess GET; extension). */
  running?: boolean;
}

export interface InstanceResultResources {
  elapsed_time?: number;
  monotonic_time?: number;
  user_cpu_time?: number;
  system_cpu_time?: number;
  max_rss?: number;
  cost?: number;
  block_input?: number;
  block_output?: number;
  page_faults?: number;
  page_faults_io?: number;
  shared_memory?: number;
  unshared_memory?: number;
  signals?: number;
  swaps?: number;
  voluntary_switches?: number;
  involuntary_switches?: number;
}

export interface InstanceResult {
  state: ProcessState;
  stdout: StreamRepr;
  stderr: StreamRepr;
  resources?: InstanceResultResources;
}

/** The main process's stdin as an instance's metadata stores it. */
export interface StoredStdin {
  value: string;
  encoding: StreamEncoding;
  close?: boolean;
}

/** `metadata` of an `instance` operation: the normalised spawn request, plus `result` once it ran. */
export interface OperationInstanceMetadata extends Omit<InstanceSpawnRequest, "stdin"> {
  stdin?: StoredStdin;
  result?: InstanceResult | null;
  /** Set when the run's writes held a secret's value, so no image was made. */
  commit_refused?: CommitRefused;
}

/** `metadata` of an `image_import` operation (credentials masked). */
export interface ImageImportMetadata {
  registry: { url: string; credentials?: RegistryCredentials };
  tag?: string | null;
  /** Seconds. */
  timeout?: number;
}

export interface OperationResult {
  image: Uuid | null;
  tag: string | null;
}

/** `GET /v1/operations/{id}` of a run. */
export interface InstanceOperationResponse extends OperationSummary {
  kind: "instance";
  metadata?: OperationInstanceMetadata | null;
  result?: OperationResult | null;
}

/** `GET /v1/operations/{id}` of an image import. */
export interface ImportOperationResponse extends OperationSummary {
  kind: "image_import";
  metadata?: ImageImportMetadata | null;
  result?: OperationResult | null;
}

/** `GET /v1/operations/{id}`: narrow on `kind` to get the metadata's type. */
export type OperationResponse = InstanceOperationResponse | ImportOperationResponse;

/** Alias under the schema name our server's OpenAPI document uses (`$id: "Operation"`). */
export type Operation = OperationResponse;

// ---------------------------------------------------------------- events

export interface EventResources {
  user_time_us: number;
  sys_time_us: number;
  max_rss_kb: number;
  shared_memory: number;
  unshared_memory: number;
  swaps: number;
  minor_faults: number;
  major_faults: number;
  voluntary_ctx_switches: number;
  involuntary_ctx_switches: number;
  block_input_ops: number;
  block_output_ops: number;
  ipc_msgs_sent: number;
  ipc_msgs_received: number;
  signals_received: number;
}

export interface EventDataInit {
  started_at: Timestamp;
  runtime_path: string;
  verbose: boolean;
  init_pid: number;
  hostname?: string;
  kernel?: string;
  machine?: string;
  boot_id?: string;
}

export interface NetworkInterfaceStats {
  name: string;
  rx_bytes: number;
  rx_packets: number;
  rx_errs: number;
  rx_drop: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errs: number;
  tx_drop: number;
}

export interface EventDataNetwork {
  interfaces: NetworkInterfaceStats[];
  configured?: {
    ip4?: string;
    ip4_gw?: string;
    ip6?: string;
    ip6_gw?: string;
    gw_mac?: string;
    nameserver?: string;
  };
  error?: string;
}

export interface EventDataSpawn {
  pid: number;
  command: string;
  args: string[];
  shell: boolean;
  cwd: string;
  uid: number;
  gid: number;
  timeout: number;
  truncate_at: number;
  env?: Record<string, string>;
}

export interface EventDataTruncated {
  stream: "stdout" | "stderr";
  bytes_emitted: number;
  bytes_dropped: number;
}

export interface EventDataSizeCap {
  limit_bytes: number;
  file_size: number;
}

export interface EventDataExit {
  pid: number;
  code: number;
  signal: number;
  timed_out: boolean;
  duration_ms: number;
  resources: EventResources;
  core_dump?: boolean;
}

export interface EventDataShutdown {
  stopped_at: Timestamp;
  reason: string;
}

export interface EventDataCompletion {
  status: OperationStatus;
  duration_ms: number;
  result_image_uuid?: Uuid | null;
  error?: string | null;
  image_size_bytes?: number;
}

/** Extension: a destination the run's egress policy refused (docs/egress.md). */
export interface EventDataEgressDenied {
  /** A domain name, or `address:port` for a connection. */
  destination: string;
  reason: "denied_name" | "private_answer" | "not_allowed" | "denied_address" | "other_resolver";
  protocol?: "tcp" | "udp";
  /** Allowed names the address had been resolved for (their TTL ran out). */
  names?: string[];
  /** `private_answer`: the addresses dropped from the DNS answer. */
  addresses?: string[];
}

export interface EventDataMap {
  init: EventDataInit;
  network: EventDataNetwork;
  spawn: EventDataSpawn;
  stdin: StreamRepr;
  stdout: StreamRepr;
  stderr: StreamRepr;
  truncated: EventDataTruncated;
  size_cap: EventDataSizeCap;
  exit: EventDataExit;
  shutdown: EventDataShutdown;
  completion: EventDataCompletion;
  egress_denied: EventDataEgressDenied;
}

export type OperationEventType = keyof EventDataMap;

/** One event envelope (the JSON carried on an SSE `data:` line). Narrow on `type`. */
export type OperationEvent = {
  [K in OperationEventType]: { id: number; ts: Timestamp; spid?: number; type: K; data: EventDataMap[K] };
}[OperationEventType];

export interface OperationEventsQuery {
  follow?: boolean;
  spid?: number;
  /** Exclusive lower bound on event id. */
  since?: number;
}

// ---------------------------------------------------------------- subprocesses

export interface ExecSpec {
  command: string;
  args?: string[];
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  stdin?: ClosableStreamRepr;
  truncate_output_at?: number;
  /** Extension: a pseudo-terminal for the process (see InstanceSpawnRequest.tty). */
  tty?: boolean;
  rows?: number;
  cols?: number;
}

export interface SubprocessStartResponse {
  spid: number;
}

// ---------------------------------------------------------------- inspect

export interface FileItem {
  /** Entry name inside the listed directory. */
  path: string;
  size: number;
  owner: string;
  group: string;
  uid: number;
  gid: number;
  /** Full st_mode including type bits. */
  mode: number;
  /** Unix seconds. */
  mtime: number;
  nlink: number;
  is_dir: boolean;
  is_regular: boolean;
  is_symlink: boolean;
  is_socket: boolean;
  is_fifo: boolean;
  symlink_to: string;
}

export interface DirectoryList {
  path: string;
  files: FileItem[];
}

export type GrepCase = "sensitive" | "insensitive" | "smart";

export interface GrepQuery {
  pattern: string | string[];
  path?: string | string[];
  glob?: string | string[];
  max_count?: number;
  max_total?: number;
  case?: GrepCase;
  before?: number;
  after?: number;
}

export interface GrepSubmatch {
  text: string;
  start: number;
  end: number;
}

export interface GrepMatch {
  path: string;
  line_number: number;
  absolute_offset: number;
  line_text: string;
  line_bytes: number;
  submatches: GrepSubmatch[];
  type: "match" | "context";
}

export interface DiffQuery {
  /** The image to compare with (default: the image's parent). */
  against?: string;
  /** Only this subtree ("/" by default). */
  path?: string;
  /** Inline unified diffs of small text files. */
  text?: boolean;
  /** At most this many entries (default 10 000, at most 100 000). */
  limit?: number;
}

export type DiffFileType = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

/** One side of a diff entry: what the path is in that image. */
export interface DiffSide {
  type: DiffFileType;
  size: number;
  /** Permission bits (with setuid/setgid/sticky), no type bits. */
  mode: number;
  uid: number;
  gid: number;
  symlink_to?: string;
}

export type DiffChange = "type" | "size" | "mode" | "owner" | "target" | "content";

export interface DiffEntry {
  path: string;
  status: "added" | "removed" | "changed";
  /** What differs, for `changed`. */
  changes?: DiffChange[];
  /** The path in `against` (absent when added). */
  old?: DiffSide;
  /** The path in the image (absent when removed). */
  new?: DiffSide;
  /** Unified diff of a small text file (with `text`). */
  diff?: string;
  /** Why a regular file has no `diff` although `text` was asked. */
  diff_omitted?: "binary" | "file_size" | "total" | "edits";
}

/** `GET /v1/inspect/{uuid}/diff` (extension). */
export interface ImageDiff {
  image: string;
  against: string;
  path: string;
  entries: DiffEntry[];
  /** "layers": only the layers between the two images were walked; "full": both trees. */
  walk: "layers" | "full";
  truncated: boolean;
  truncated_reason?: "limit" | "deadline" | "depth" | "compare_bytes";
}

export interface GrepResult {
  path: string | string[];
  patterns: string[];
  truncated: boolean;
  matches: GrepMatch[];
}

// ---------------------------------------------------------------- admin (extension, admin tokens only)

/** The closed set of token permissions (whoami's `permissions` keys). */
export type Permission =
  | "list"
  | "spawn"
  | "spawn_disposable"
  | "import"
  | "cancel"
  | "set_image_tag"
  | "delete_image";

/** A project's row of `GET /v1/admin/usage`, without its name. */
export interface AdminProjectUsage {
  images: number;
  layers: number;
  files: number;
  exclusive_bytes: number;
  shared_bytes: number;
  charged_bytes: number;
  storage_max_bytes: number | null;
  layer_bytes: { exclusive: number; shared: number };
  file_bytes: { exclusive: number; shared: number };
}

/** `GET /v1/admin/projects` entry. */
export interface AdminProject {
  id: Uuid;
  name: string;
  created_at: Timestamp;
  /** The limits in force, as whoami shows them to the project's tokens. */
  limits: Record<string, number>;
  /** From the server's last usage pass; absent on a server without usage tracking. */
  usage?: AdminProjectUsage;
}

/** A token as `GET /v1/admin/tokens` lists it: never its secret or hash. */
export interface AdminToken {
  id: Uuid;
  name: string;
  project: string;
  permissions: Permission[];
  admin: boolean;
  created_at: Timestamp;
  expires_at: Timestamp | null;
  revoked_at: Timestamp | null;
  /** The last request it was accepted for, to the minute; null: never used. */
  last_used_at: Timestamp | null;
}

/** `POST /v1/admin/tokens` answer: the token and its secret, shown this once. */
export interface CreatedToken extends AdminToken {
  token: string;
}

export interface TokenCreateRequest {
  project: string;
  name: string;
  /** Each must be one the calling token has. */
  permissions: Permission[];
  /** An admin token; never implied. */
  admin?: boolean;
  /** 1 … 315360000; omitted: never expires (refused when the caller itself expires). */
  expires_in_seconds?: number;
}

/** `POST /v1/operations/{id}/ports/{port}/url` (extension). */
export interface PortUrlRequest {
  /** Lifetime of the URL, 1 s to 7 days (default 3600). */
  expires_in_seconds?: number;
}

export interface PortUrlResponse {
  /** Absolute URL; anyone holding it reaches the port until it expires, with no token. */
  url: string;
  /** The same URL without scheme and host. */
  path: string;
  /** RFC 3339. */
  expires_at: string;
}
