// An immutable image. Running from it yields a new image (a child), so branching is running twice from the
// same handle and rolling back is running from an older one.

import type { ContreeApi } from "./api.js";
import { Deadline } from "./deadline.js";
import { checkBytes, DEFAULTS, runSeconds, waitLimitMs } from "./defaults.js";
import { InvalidArgumentError, isUnprocessable } from "./errors.js";
import { ensureStored, type FileInput, fileSource, type LocalPath } from "./files.js";
import type { RequestOptions } from "./http.js";
import type { WaitOptions } from "./operation-handle.js";
import type { OutputCallbacks } from "./output.js";
import { printAs } from "./printable.js";
import { commandLabel, commandSpec, RunOperation, type RunResult, ttySpec } from "./run-operation.js";
import { closableStreamRepr } from "./stream-repr.js";
import type {
  DiffQuery,
  FileItem,
  FileSpec,
  GrepQuery,
  GrepResult,
  Image,
  ImageDeleteQuery,
  ImageDeleteResponse,
  ImageDiff,
  InstanceSpawnRequest,
  NetworkingSpec,
  OperationInstanceMetadata,
  SecretUse,
} from "./types.js";

/** A file for a run, spelled out: exactly one of `content`, `path`, `uuid`, plus its owner and mode. */
export interface RunFileSpec {
  /** Content to upload (deduplicated): text, bytes or a Blob. */
  content?: Exclude<FileInput, LocalPath>;
  /** A file on this machine; its permission bits are kept unless `mode` is given. */
  path?: string;
  /** An already uploaded file. */
  uuid?: string;
  /** Octal permission string or number. Default "0644" (a local file: its own bits). */
  mode?: string | number;
  uid?: number;
  gid?: number;
}

/**
 * A file placed into the sandbox before the command runs: content (a string is text, never a path),
 * `{ path }` for a file on this machine, or a `RunFileSpec`.
 */
export type RunFile = Exclude<FileInput, LocalPath> | RunFileSpec;

export interface RunOptions extends RequestOptions, OutputCallbacks {
  /** Extra argv; with a string command in shell mode they become $0, $1, … */
  args?: string[];
  /** Default: true for a string command, false for an argv array. */
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  hostname?: string;
  /** Discard filesystem changes (no result image). */
  disposable?: boolean;
  /** Store the effective env in the result image. */
  preserveEnv?: boolean;
  stdin?: string | Uint8Array;
  /** Keep the main process's stdin open for `op.main.write()`; close it with `op.main.close()`. */
  keepStdinOpen?: boolean;
  /**
   * How long the sandbox may run, in whole **seconds**; then the process is killed and the result
   * says `timedOut`. Default 120 (the official CLI's).
   */
  timeoutSec?: number;
  /** @deprecated Older name of `timeoutSec` (seconds). */
  timeout?: number;
  /** Bytes of stdout and of stderr kept. Default 65 536 (64 KiB, the official CLI's). */
  truncateOutputAt?: number;
  /**
   * Absolute path in the sandbox → file. `{"/x.txt": "text"}` writes the text; a file on this
   * machine is `{"/x": { path: "./x" }}`. Content is uploaded once (`files.ensure`).
   */
  files?: Record<string, RunFile>;
  maxLayerBytes?: number;
  /**
   * Outbound networking: `true`, or an egress policy `{ allow?, deny? }` (networking on, only
   * what it allows: domains, `*.suffix` domains, IPv4 CIDRs; deny beats allow).
   */
  networking?: boolean | EgressRules;
  /**
   * A pseudo-terminal for the main process (server extension): one output stream (stdout), stdin
   * open for typing. Attach with `op.terminal()`.
   */
  tty?: boolean;
  /** Terminal rows at start (default 24). */
  rows?: number;
  /** Terminal columns at start (default 80). */
  cols?: number;
  /**
   * Project secrets the run may use, by name (extension; an admin stores them): env mode puts the
   * value in `env` (a commit holding it is refused), header mode a placeholder the server swaps
   * for the value in HTTP and HTTPS requests to one host (docs/secrets.md).
   */
  secrets?: SecretUse[];
  /** `wait()` / `result()` throw CommandFailedError on a non-zero exit, a signal or a timeout. */
  check?: boolean;
}

export interface ReadOptions extends RequestOptions {
  as?: "bytes" | "text";
}

/** `run()` options as the wire names them, checked; shared by runs, sessions and sandboxes. */
export async function spawnRequest(
  api: ContreeApi,
  image: string,
  command: string | readonly string[],
  opts: RunOptions,
  defaultTimeoutSec: number = DEFAULTS.timeoutSec,
): Promise<InstanceSpawnRequest> {
  const req: InstanceSpawnRequest = { image, ...commandSpec(command, opts.args, opts.shell) };
  if (opts.env) req.env = opts.env;
  if (opts.cwd !== undefined) req.cwd = opts.cwd;
  if (opts.uid !== undefined) req.uid = opts.uid;
  if (opts.gid !== undefined) req.gid = opts.gid;
  if (opts.hostname !== undefined) req.hostname = opts.hostname;
  if (opts.disposable !== undefined) req.disposable = opts.disposable;
  if (opts.preserveEnv !== undefined) req.preserve_env = opts.preserveEnv;
  if (opts.stdin !== undefined || opts.keepStdinOpen) {
    req.stdin = closableStreamRepr(opts.stdin ?? "", !opts.keepStdinOpen);
  }
  req.timeout = runSeconds(opts, defaultTimeoutSec);
  req.truncate_output_at = checkBytes("truncateOutputAt", opts.truncateOutputAt) ?? DEFAULTS.truncateOutputAt;
  if (opts.maxLayerBytes !== undefined) {
    req.resources_limits = { max_layer_bytes: checkBytes("maxLayerBytes", opts.maxLayerBytes)! };
  }
  if (opts.networking !== undefined) req.networking = networkingSpec(opts.networking);
  Object.assign(req, ttySpec(opts));
  if (opts.secrets) req.secrets = opts.secrets.map((x) => ({ ...x }));
  if (opts.files) req.files = await fileSpecs(api, opts.files, opts);
  return req;
}

async function fileSpecs(
  api: ContreeApi,
  files: Record<string, RunFile>,
  opts: RequestOptions,
): Promise<Record<string, FileSpec>> {
  const entries = await Promise.all(
    Object.entries(files).map(async ([path, f]): Promise<[string, FileSpec]> => {
      const desc: RunFileSpec =
        typeof f === "string" || f instanceof Uint8Array || f instanceof ArrayBuffer || f instanceof Blob
          ? { content: f }
          : f;
      const given = [desc.content, desc.path, desc.uuid].filter((v) => v !== undefined).length;
      if (given !== 1) {
        throw new InvalidArgumentError(
          `files[${JSON.stringify(path)}]: give exactly one of content, path, uuid`,
        );
      }
      let uuid = desc.uuid;
      let mode = desc.mode;
      if (uuid === undefined) {
        const src = await fileSource(desc.path !== undefined ? { path: desc.path } : desc.content!);
        if (mode === undefined && src.mode !== undefined) mode = src.mode;
        uuid = (await ensureStored(api, src, opts)).uuid;
      }
      mode ??= "0644";
      const spec: FileSpec = {
        uuid,
        mode: typeof mode === "number" ? mode.toString(8).padStart(4, "0") : mode,
      };
      if (desc.uid !== undefined) spec.uid = desc.uid;
      if (desc.gid !== undefined) spec.gid = desc.gid;
      return [path, spec];
    }),
  );
  return Object.fromEntries(entries);
}

/** The wait part of run options (`check`, callbacks), which the handle keeps for `wait()`. */
export function waitDefaultsOf(opts: RunOptions): WaitOptions {
  const w: WaitOptions = {};
  if (opts.check !== undefined) w.check = opts.check;
  if (opts.onStdout) w.onStdout = opts.onStdout;
  if (opts.onStderr) w.onStderr = opts.onStderr;
  return w;
}

export class ImageHandle {
  readonly #api: ContreeApi;

  constructor(
    api: ContreeApi,
    readonly uuid: string,
    /** The record as last seen (tag, created_at); absent when the handle was made from a bare uuid. */
    readonly record?: Image,
    /** Every tag of the image (its own project's and public ones), when loaded by `images.get()` or `info()`. */
    readonly tags?: readonly string[],
  ) {
    this.#api = api;
  }

  private get api(): ContreeApi {
    return this.#api;
  }

  /** The one tag in `record` (undefined when no record was loaded). All of them: `tags`. */
  get tagName(): string | null | undefined {
    return this.record?.tag;
  }

  toString(): string {
    return this.uuid;
  }

  /** What printing shows: uuid and tags. */
  toJSON(): { uuid: string; tags?: readonly string[] } {
    return this.tags === undefined ? { uuid: this.uuid } : { uuid: this.uuid, tags: this.tags };
  }

  /** GET /v1/inspect/{uuid}/ — a fresh handle carrying the current record and all tags. */
  async info(opts?: RequestOptions): Promise<ImageHandle> {
    const [record, tags] = await Promise.all([this.api.inspectImage(this.uuid, opts), this.listTags(opts)]);
    return new ImageHandle(this.api, this.uuid, record, tags);
  }

  /** Every tag on this image, read now (`GET /v1/images?uuid=…&tagged=1`). */
  async listTags(opts?: RequestOptions): Promise<string[]> {
    const { images } = await this.api.listImages({ uuid: this.uuid, tagged: true, limit: 1000 }, opts);
    const tags = images.flatMap((i) => (i.uuid === this.uuid && i.tag ? [i.tag] : []));
    return [...new Set(tags)].sort();
  }

  /**
   * Starts a run; `await op.wait()` for the result, or stream `op.stdout()` (or pass `onStdout`).
   * The sandbox gets `timeoutSec` (default 120 s) and keeps 64 KiB of each stream unless told otherwise.
   */
  async run(command: string | readonly string[], opts: RunOptions = {}): Promise<RunOperation> {
    const req = await spawnRequest(this.api, this.uuid, command, opts);
    const created = await this.api.spawnInstance(req, opts);
    return new RunOperation(
      this.api,
      created.uuid,
      this,
      (uuid) => new ImageHandle(this.api, uuid),
      waitDefaultsOf(opts),
      `run ${commandLabel(command)}`,
    );
  }

  /**
   * `run()` then `wait()`. `waitTimeoutMs` bounds the whole call (uploads, spawn and the wait): past
   * it, TimeoutError (and with `cancelOnAbort` the run is cancelled).
   */
  async runAndWait(
    command: string | readonly string[],
    opts: RunOptions & WaitOptions = {},
  ): Promise<RunResult> {
    const deadline = new Deadline(opts.signal, waitLimitMs(opts), `run ${commandLabel(command)}`);
    try {
      const { waitTimeoutMs: _w, timeoutMs: _t, ...rest } = opts;
      const op = await this.run(command, { ...rest, signal: deadline.signal });
      return await op.wait({ ...waitOptionsOf(rest), signal: deadline.signal });
    } catch (e) {
      throw deadline.reason ?? e;
    } finally {
      deadline.dispose();
    }
  }

  /** Sets (or moves) a tag onto this image. */
  async tag(name: string, opts?: RequestOptions): Promise<ImageHandle> {
    return new ImageHandle(this.api, this.uuid, await this.api.tagImage(this.uuid, name, opts));
  }

  /** Removes `name`, or every tag of the image when omitted. */
  async untag(name?: string, opts?: RequestOptions): Promise<ImageHandle> {
    const record = await this.api.untagImage(this.uuid, name, opts);
    return new ImageHandle(this.api, this.uuid, record);
  }

  /**
   * Deletes this image (extension; `delete_image` permission). Refused with a 409 `ConflictError`
   * while it is tagged unless `force`, which removes its tags. Its children keep working.
   */
  async delete(o: ImageDeleteQuery = {}, opts?: RequestOptions): Promise<ImageDeleteResponse> {
    return this.api.deleteImage(this.uuid, o, opts);
  }

  /** Directory listing (entry names, not full paths). */
  async ls(path = "/", opts?: RequestOptions): Promise<FileItem[]> {
    return (await this.api.listDirectory(this.uuid, path, opts)).files;
  }

  /** File content as bytes, or as text with `{ as: "text" }`. */
  read(path: string, opts: ReadOptions & { as: "text" }): Promise<string>;
  read(path: string, opts?: ReadOptions & { as?: "bytes" }): Promise<Uint8Array>;
  async read(path: string, opts: ReadOptions = {}): Promise<Uint8Array | string> {
    const bytes = await this.api.downloadBytes(this.uuid, path, opts);
    return opts.as === "text" ? new TextDecoder().decode(bytes) : bytes;
  }

  /** File content as a stream (large files). */
  async stream(path: string, opts?: RequestOptions): Promise<ReadableStream<Uint8Array>> {
    const res = await this.api.download(this.uuid, path, opts);
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  /** PAX tar of `path` and everything below it. */
  async archive(path: string, opts?: RequestOptions): Promise<ReadableStream<Uint8Array>> {
    const res = await this.api.archive(this.uuid, path, opts);
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  async grep(
    pattern: string | string[],
    query: Omit<GrepQuery, "pattern"> = {},
    opts?: RequestOptions,
  ): Promise<GrepResult> {
    return this.api.grep(this.uuid, { ...query, pattern }, opts);
  }

  /**
   * What changed from `against` (an image, its UUID; default: this image's parent) to this image:
   * files added, removed and changed, with unified diffs of small text files when `text` is set.
   */
  async diff(
    against?: string | { readonly uuid: string },
    query: Omit<DiffQuery, "against"> = {},
    opts?: RequestOptions,
  ): Promise<ImageDiff> {
    const other = typeof against === "string" ? against : against?.uuid;
    return this.api.diffImage(this.uuid, { ...query, against: other }, opts);
  }

  /** True if `path` exists (a directory counts: the server answers 422 for downloading one). */
  async exists(path: string, opts?: RequestOptions): Promise<boolean> {
    try {
      return await this.api.headDownload(this.uuid, path, opts);
    } catch (e) {
      if (isUnprocessable(e)) return true;
      throw e;
    }
  }

  /**
   * The image this one was run from, or null for imported/seeded images: the record's `parent_uuid`
   * when the server sends it, else via the producing operation's input image.
   */
  async parent(opts?: RequestOptions): Promise<ImageHandle | null> {
    const record =
      this.record?.operation_uuid !== undefined ? this.record : await this.api.inspectImage(this.uuid, opts);
    if (record.parent_uuid) return new ImageHandle(this.api, record.parent_uuid);
    if (!record.operation_uuid) return null;
    const op = await this.api.getOperation(record.operation_uuid, opts);
    if (op.kind !== "instance") return null;
    const meta = op.metadata as OperationInstanceMetadata | null | undefined;
    const ref = op.image_uuid ?? meta?.image;
    if (!ref) return null;
    const uuid = ref.startsWith("tag:") ? await this.api.resolveTag(ref.slice(4), opts) : ref;
    return new ImageHandle(this.api, uuid);
  }
}

/** The options of `wait()` found in a merged options object. */
export function waitOptionsOf(opts: WaitOptions): WaitOptions {
  const w: WaitOptions = {};
  if (opts.cancelOnAbort !== undefined) w.cancelOnAbort = opts.cancelOnAbort;
  if (opts.check !== undefined) w.check = opts.check;
  if (opts.onStdout) w.onStdout = opts.onStdout;
  if (opts.onStderr) w.onStderr = opts.onStderr;
  return w;
}

printAs(ImageHandle, "ImageHandle");

/** An egress policy: `allow` (only these, when given) and `deny` (never these). */
export interface EgressRules {
  allow?: string[];
  deny?: string[];
}

function networkingSpec(n: boolean | EgressRules): NetworkingSpec {
  if (typeof n === "boolean") return { enabled: n };
  return {
    enabled: true,
    ...(n.allow === undefined ? {} : { allow: [...n.allow] }),
    ...(n.deny === undefined ? {} : { deny: [...n.deny] }),
  };
}
