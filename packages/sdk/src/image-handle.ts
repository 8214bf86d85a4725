// An immutable image. Running from it yields a new image (a child), so branching is running twice from the
// same handle and rolling back is running from an older one.

import type { ContreeApi } from "./api.js";
import { isUnprocessable } from "./errors.js";
import { type FileInput, Files } from "./files.js";
import type { RequestOptions } from "./http.js";
import type { WaitOptions } from "./operation-handle.js";
import { commandSpec, RunOperation, type RunResult } from "./run-operation.js";
import { closableStreamRepr } from "./stream-repr.js";
import type {
  FileItem,
  FileSpec,
  GrepQuery,
  GrepResult,
  Image,
  ImageDeleteQuery,
  ImageDeleteResponse,
  InstanceSpawnRequest,
  OperationInstanceMetadata,
} from "./types.js";

/** A file placed into the sandbox before the command runs. */
export type RunFile =
  | FileInput
  | {
      /** Content to upload (deduplicated), or a path on this machine. */
      content?: FileInput;
      /** An already uploaded file. */
      uuid?: string;
      /** Octal permission string or number. Default "0644". */
      mode?: string | number;
      uid?: number;
      gid?: number;
    };

export interface RunOptions extends RequestOptions {
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
  /** Sandbox wall-clock limit in **seconds** (wire `timeout`). */
  timeout?: number;
  /** Bytes captured per stream. */
  truncateOutputAt?: number;
  /** Absolute path in the sandbox → content. Content is uploaded with `files.ensure`. */
  files?: Record<string, RunFile>;
  maxLayerBytes?: number;
  /** Outbound networking. */
  networking?: boolean;
}

export interface ReadOptions extends RequestOptions {
  as?: "bytes" | "text";
}

export class ImageHandle {
  constructor(
    private readonly api: ContreeApi,
    readonly uuid: string,
    /** The record as last seen (tag, created_at); absent when the handle was made from a bare uuid. */
    readonly record?: Image,
  ) {}

  /** The tag in `record` (undefined when no record was loaded). */
  get tagName(): string | null | undefined {
    return this.record?.tag;
  }

  toString(): string {
    return this.uuid;
  }

  /** GET /v1/inspect/{uuid}/ — a fresh handle carrying the current record. */
  async info(opts?: RequestOptions): Promise<ImageHandle> {
    return new ImageHandle(this.api, this.uuid, await this.api.inspectImage(this.uuid, opts));
  }

  /** Starts a run; `await op.wait()` for the result, or stream `op.stdout()`. */
  async run(command: string | readonly string[], opts: RunOptions = {}): Promise<RunOperation> {
    const req: InstanceSpawnRequest = { image: this.uuid, ...commandSpec(command, opts.args, opts.shell) };
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
    if (opts.timeout !== undefined) req.timeout = opts.timeout;
    if (opts.truncateOutputAt !== undefined) req.truncate_output_at = opts.truncateOutputAt;
    if (opts.maxLayerBytes !== undefined) req.resources_limits = { max_layer_bytes: opts.maxLayerBytes };
    if (opts.networking !== undefined) req.networking = { enabled: opts.networking };
    if (opts.files) req.files = await this.fileSpecs(opts.files, opts);
    const created = await this.api.spawnInstance(req, opts);
    return new RunOperation(this.api, created.uuid, this, (uuid) => new ImageHandle(this.api, uuid));
  }

  /** `run()` then `wait()`. */
  async runAndWait(
    command: string | readonly string[],
    opts: RunOptions & WaitOptions = {},
  ): Promise<RunResult> {
    const op = await this.run(command, opts);
    const wait: WaitOptions = {};
    if (opts.signal) wait.signal = opts.signal;
    if (opts.cancelOnAbort !== undefined) wait.cancelOnAbort = opts.cancelOnAbort;
    return op.wait(wait);
  }

  private async fileSpecs(
    files: Record<string, RunFile>,
    opts: RequestOptions,
  ): Promise<Record<string, FileSpec>> {
    const store = new Files(this.api);
    const entries = await Promise.all(
      Object.entries(files).map(async ([path, f]): Promise<[string, FileSpec]> => {
        const isInput =
          typeof f === "string" || f instanceof Uint8Array || f instanceof ArrayBuffer || f instanceof Blob;
        const desc = isInput ? { content: f } : f;
        let uuid = desc.uuid;
        if (!uuid) {
          if (desc.content === undefined) throw new TypeError(`file ${path}: give content or uuid`);
          uuid = (await store.ensure(desc.content, opts)).uuid;
        }
        const mode = desc.mode ?? "0644";
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
