// The SDK's wire surface, spelled out for openapi.test.ts. Kept free of server imports so that
// wire-surface.tsconfig.json can type-check it on its own: the compiler makes WIRE list every low-level
// method and each name map list exactly the keys of its type, with the right required/optional mark.

import type {
  AdminProject,
  AdminToken,
  ClosableStreamRepr,
  ContreeApi,
  CreatedToken,
  ExecSpec,
  FileInfo,
  FileItem,
  Image,
  ImageDeleteResponse,
  ImageDiff,
  ImageImportMetadata,
  ImageImportRequest,
  ImageTagRequest,
  InstanceResult,
  InstanceSpawnRequest,
  OperationInstanceMetadata,
  OperationResponse,
  OperationSummary,
  TokenCreateRequest,
  WhoAmIResponse,
} from "../src/index.js";

export type HttpMethod = "GET" | "HEAD" | "POST" | "PATCH" | "DELETE";
type ApiMethod = Exclude<keyof ContreeApi, "transport" | "toJSON">;

export const U = "00000000-0000-4000-8000-000000000001";
const SHA = "a".repeat(64);
const SINCE = { since: "1h", until: new Date(0) };

/** Each low-level method: the request it must send, and a call that makes it send it. */
export const WIRE: Record<
  ApiMethod,
  { method: HttpMethod; path: string; call: (a: ContreeApi) => Promise<unknown> }
> = {
  whoami: { method: "GET", path: "/v1/whoami", call: (a) => a.whoami() },
  listImages: {
    method: "GET",
    path: "/v1/images",
    call: (a) => a.listImages({ limit: 1, offset: 0, tagged: true, tag: "x", uuid: U, ...SINCE }),
  },
  importImage: {
    method: "POST",
    path: "/v1/images/import",
    call: (a) => a.importImage({ registry: { url: "docker://r/x:1" }, tag: "x", timeout: 5 }),
  },
  tagImage: { method: "PATCH", path: "/v1/images/{image_uuid}/tag", call: (a) => a.tagImage(U, "x") },
  untagImage: { method: "DELETE", path: "/v1/images/{image_uuid}/tag", call: (a) => a.untagImage(U, "x") },
  deleteImage: {
    method: "DELETE",
    path: "/v1/images/{image_uuid}",
    call: (a) => a.deleteImage(U, { force: true }),
  },
  uploadFile: { method: "POST", path: "/v1/files", call: (a) => a.uploadFile(() => new Uint8Array([1])) },
  listFiles: {
    method: "GET",
    path: "/v1/files",
    call: (a) => a.listFiles({ limit: 1, offset: 0, ...SINCE }),
  },
  getFile: { method: "GET", path: "/v1/files/{sha256}", call: (a) => a.getFile(SHA) },
  headFile: { method: "HEAD", path: "/v1/files/{sha256}", call: (a) => a.headFile(SHA) },
  spawnInstance: {
    method: "POST",
    path: "/v1/instances",
    call: (a) => a.spawnInstance({ command: "true", image: U }),
  },
  listOperations: {
    method: "GET",
    path: "/v1/operations",
    call: (a) => a.listOperations({ limit: 1, offset: 0, status: "SUCCESS", kind: "instance", ...SINCE }),
  },
  getOperation: { method: "GET", path: "/v1/operations/{operation_id}", call: (a) => a.getOperation(U) },
  createPortUrl: {
    method: "POST",
    path: "/v1/operations/{operation_id}/ports/{port}/url",
    call: (a) => a.createPortUrl(U, 8080, { expires_in_seconds: 60 }),
  },
  cancelOperation: {
    method: "DELETE",
    path: "/v1/operations/{operation_id}",
    call: (a) => a.cancelOperation(U),
  },
  operationEvents: {
    method: "GET",
    path: "/v1/operations/{operation_id}/events",
    call: async (a) =>
      (await a.operationEvents(U, { follow: true, spid: 1, since: 3, lastEventId: 3 })).text(),
  },
  startSubprocess: {
    method: "POST",
    path: "/v1/operations/{operation_id}/subprocesses",
    call: (a) => a.startSubprocess(U, { command: "true" }),
  },
  getSubprocess: {
    method: "GET",
    path: "/v1/operations/{operation_id}/subprocesses/{spid}",
    call: (a) => a.getSubprocess(U, 2),
  },
  signalSubprocess: {
    method: "DELETE",
    path: "/v1/operations/{operation_id}/subprocesses/{spid}",
    call: (a) => a.signalSubprocess(U, 2, "KILL"),
  },
  writeSubprocessStdin: {
    method: "POST",
    path: "/v1/operations/{operation_id}/subprocesses/{spid}/stdin",
    call: (a) => a.writeSubprocessStdin(U, 2, { value: "x", close: true }),
  },
  resolveTag: { method: "GET", path: "/v1/inspect/", call: (a) => a.resolveTag("x") },
  inspectImage: { method: "GET", path: "/v1/inspect/{image_uuid}/", call: (a) => a.inspectImage(U) },
  headImage: { method: "HEAD", path: "/v1/inspect/{image_uuid}/", call: (a) => a.headImage(U) },
  listDirectory: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/list",
    call: (a) => a.listDirectory(U, "/"),
  },
  listDirectoryText: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/list",
    call: (a) => a.listDirectoryText(U, "/"),
  },
  download: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/download",
    call: async (a) => (await a.download(U, "/f")).arrayBuffer(),
  },
  downloadBytes: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/download",
    call: (a) => a.downloadBytes(U, "/f"),
  },
  headDownload: {
    method: "HEAD",
    path: "/v1/inspect/{image_uuid}/download",
    call: (a) => a.headDownload(U, "/f"),
  },
  archive: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/archive",
    call: async (a) => (await a.archive(U, "/")).arrayBuffer(),
  },
  headArchive: {
    method: "HEAD",
    path: "/v1/inspect/{image_uuid}/archive",
    call: (a) => a.headArchive(U, "/"),
  },
  grep: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/grep",
    call: (a) =>
      a.grep(U, {
        pattern: ["a", "b"],
        path: "/",
        glob: "*.c",
        max_count: 1,
        max_total: 2,
        case: "smart",
        before: 1,
        after: 1,
      }),
  },
  diffImage: {
    method: "GET",
    path: "/v1/inspect/{image_uuid}/diff",
    call: (a) => a.diffImage(U, { against: U, path: "/etc", text: true, limit: 10 }),
  },
  listProjects: { method: "GET", path: "/v1/admin/projects", call: (a) => a.listProjects() },
  createProject: { method: "POST", path: "/v1/admin/projects", call: (a) => a.createProject("p") },
  listTokens: { method: "GET", path: "/v1/admin/tokens", call: (a) => a.listTokens({ project: "p" }) },
  createToken: {
    method: "POST",
    path: "/v1/admin/tokens",
    call: (a) =>
      a.createToken({ project: "p", name: "n", permissions: ["list"], admin: false, expires_in_seconds: 60 }),
  },
  revokeToken: { method: "DELETE", path: "/v1/admin/tokens/{token_id}", call: (a) => a.revokeToken(U) },
};

/** Each key of T, marked the way T declares it. */
export type Presence<T> = {
  [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? "optional" : "required";
};

export const FILE: Presence<FileInfo> = {
  uuid: "required",
  sha256: "required",
  size: "required",
  created_at: "required",
  updated_at: "required",
};
export const IMAGE: Presence<Image> = {
  uuid: "required",
  tag: "required",
  created_at: "required",
  operation_uuid: "optional",
  parent_uuid: "optional",
  size: "optional",
  parent_deleted: "optional",
};
export const IMAGE_DELETED: Presence<ImageDeleteResponse> = {
  uuid: "required",
  deleted: "required",
  deleted_at: "required",
  tags_removed: "required",
};
export const SUMMARY: Presence<OperationSummary> = {
  uuid: "required",
  kind: "required",
  status: "required",
  error: "optional",
  created_at: "required",
  started_at: "optional",
  finished_at: "optional",
  duration: "optional",
  image_uuid: "optional",
  result_image_uuid: "optional",
  image_size: "optional",
  consumed_cpu: "optional",
  consumed_memory: "optional",
  image_deleted: "optional",
  result_image_deleted: "optional",
};
export const OPERATION: Presence<OperationResponse> = {
  ...SUMMARY,
  metadata: "optional",
  result: "optional",
};
export const FILE_ITEM: Presence<FileItem> = {
  path: "required",
  size: "required",
  owner: "required",
  group: "required",
  uid: "required",
  gid: "required",
  mode: "required",
  mtime: "required",
  nlink: "required",
  is_dir: "required",
  is_regular: "required",
  is_symlink: "required",
  is_socket: "required",
  is_fifo: "required",
  symlink_to: "required",
};
export const ADMIN_PROJECT: Presence<AdminProject> = {
  id: "required",
  name: "required",
  created_at: "required",
  limits: "required",
  usage: "optional",
};
export const ADMIN_TOKEN: Presence<AdminToken> = {
  id: "required",
  name: "required",
  project: "required",
  permissions: "required",
  admin: "required",
  created_at: "required",
  expires_at: "required",
  revoked_at: "required",
  last_used_at: "required",
};
export const CREATED_TOKEN: Presence<CreatedToken> = { ...ADMIN_TOKEN, token: "required" };
export const WHOAMI: Presence<WhoAmIResponse> = {
  token_uuid: "required",
  token_expiration: "required",
  project: "optional",
  permissions: "required",
  limits: "optional",
  operations_stat: "required",
  admin: "optional",
  egress: "optional",
};

// ---------------------------------------------------------------- request bodies, nested

type Mark = "required" | "optional";
type MarkOf<T, K extends keyof T> = Record<never, never> extends Pick<T, K> ? "optional" : "required";
/** What lies inside a value: an object's properties, a map's values, an array's items (if objects). */
type Inside<V> = V extends readonly (infer E)[]
  ? E extends object
    ? { items: Shape<E> }
    : Record<never, never>
  : V extends object
    ? string extends keyof V
      ? V[string] extends object
        ? { values: Shape<V[string]> }
        : Record<never, never>
      : { properties: Shape<V> }
    : Record<never, never>;
/**
 * Every key of T with its mark and, for keys holding objects (or maps or arrays of them), the
 * same shape one level down: the compiler makes the literal spell out the whole nested type.
 */
export type Shape<T> = {
  [K in keyof T]-?: keyof Inside<NonNullable<T[K]>> extends never
    ? MarkOf<T, K>
    : { mark: MarkOf<T, K> } & Inside<NonNullable<T[K]>>;
};
export type ShapeNode = Mark | { mark: Mark; properties?: ShapeMap; values?: ShapeMap; items?: ShapeMap };
export type ShapeMap = { readonly [key: string]: ShapeNode };

const STDIN: Shape<ClosableStreamRepr> = { value: "required", encoding: "optional", close: "optional" };
export const SPAWN_BODY: Shape<InstanceSpawnRequest> = {
  command: "required",
  image: "required",
  args: "optional",
  shell: "optional",
  env: "optional",
  preserve_env: "optional",
  cwd: "optional",
  hostname: "optional",
  uid: "optional",
  gid: "optional",
  disposable: "optional",
  stdin: { mark: "optional", properties: STDIN },
  timeout: "optional",
  truncate_output_at: "optional",
  files: {
    mark: "optional",
    values: { uuid: "required", uid: "optional", gid: "optional", mode: "optional" },
  },
  resources_limits: { mark: "optional", properties: { max_layer_bytes: "optional" } },
  networking: { mark: "optional", properties: { enabled: "required", allow: "optional", deny: "optional" } },
  tty: "optional",
  rows: "optional",
  cols: "optional",
  secrets: {
    mark: "optional",
    items: {
      name: "required",
      env: "required",
      header: { mark: "optional", properties: { host: "required", name: "required" } },
    },
  },
};
export const IMPORT_BODY: Shape<ImageImportRequest> = {
  registry: {
    mark: "required",
    properties: {
      url: "required",
      credentials: { mark: "optional", properties: { username: "optional", password: "optional" } },
    },
  },
  tag: "optional",
  timeout: "optional",
};
export const TAG_BODY: Shape<ImageTagRequest> = { tag: "required" };
export const TOKEN_BODY: Shape<TokenCreateRequest> = {
  project: "required",
  name: "required",
  permissions: "required",
  admin: "optional",
  expires_in_seconds: "optional",
};
export const EXEC_BODY: Shape<ExecSpec> = {
  command: "required",
  args: "optional",
  shell: "optional",
  env: "optional",
  cwd: "optional",
  uid: "optional",
  gid: "optional",
  stdin: { mark: "optional", properties: STDIN },
  truncate_output_at: "optional",
  tty: "optional",
  rows: "optional",
  cols: "optional",
};
export const STDIN_BODY: Shape<ClosableStreamRepr> = STDIN;

// ---------------------------------------------------------------- response documents, nested

const STREAM: Shape<InstanceResult["stdout"]> = {
  value: "required",
  encoding: "required",
  truncated: "optional",
};
export const INSTANCE_RESULT: Shape<InstanceResult> = {
  state: {
    mark: "required",
    properties: {
      exit_code: "required",
      signal: "required",
      pid: "required",
      timed_out: "required",
      stopped: "optional",
      continued: "optional",
      core_dump: "optional",
      oom_killed: "optional",
      running: "optional",
    },
  },
  stdout: { mark: "required", properties: STREAM },
  stderr: { mark: "required", properties: STREAM },
  resources: {
    mark: "optional",
    properties: {
      elapsed_time: "optional",
      monotonic_time: "optional",
      user_cpu_time: "optional",
      system_cpu_time: "optional",
      max_rss: "optional",
      cost: "optional",
      block_input: "optional",
      block_output: "optional",
      page_faults: "optional",
      page_faults_io: "optional",
      shared_memory: "optional",
      unshared_memory: "optional",
      signals: "optional",
      swaps: "optional",
      voluntary_switches: "optional",
      involuntary_switches: "optional",
    },
  },
};
export const INSTANCE_METADATA: Shape<OperationInstanceMetadata> = {
  ...SPAWN_BODY,
  stdin: {
    mark: "optional",
    properties: { value: "required", encoding: "required", close: "optional" },
  },
  result: { mark: "optional", properties: INSTANCE_RESULT },
  commit_refused: {
    mark: "optional",
    properties: { reason: "required", secret: "required", path: "required", encoding: "required" },
  },
};
export const IMPORT_METADATA: Shape<ImageImportMetadata> = {
  registry: IMPORT_BODY.registry,
  tag: "optional",
  timeout: "optional",
};

const DIFF_SIDE: Shape<NonNullable<ImageDiff["entries"][number]["old"]>> = {
  type: "required",
  size: "required",
  mode: "required",
  uid: "required",
  gid: "required",
  symlink_to: "optional",
};
export const IMAGE_DIFF: Shape<ImageDiff> = {
  image: "required",
  against: "required",
  path: "required",
  entries: {
    mark: "required",
    items: {
      path: "required",
      status: "required",
      changes: "optional",
      old: { mark: "optional", properties: DIFF_SIDE },
      new: { mark: "optional", properties: DIFF_SIDE },
      diff: "optional",
      diff_omitted: "optional",
    },
  },
  walk: "required",
  truncated: "required",
  truncated_reason: "optional",
};
