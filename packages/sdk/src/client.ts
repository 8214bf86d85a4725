// Entry point: `new ContreeClient(options?)` with resource namespaces. Configuration is resolved on the
// first request (profile files need async I/O), so construction never throws or touches the network.

import { Admin } from "./admin.js";
import { ContreeApi, isUuid } from "./api.js";
import { checkSeconds } from "./defaults.js";
import { InvalidArgumentError, isNotFound } from "./errors.js";
import { Files } from "./files.js";
import { type RequestOptions, Transport, type TransportOptions } from "./http.js";
import { ImageHandle } from "./image-handle.js";
import { ImportOperation } from "./operation-handle.js";
import { type PageOptions, Paginator } from "./paginator.js";
import { printAs } from "./printable.js";
import { RunOperation } from "./run-operation.js";
import { Sandbox, type SandboxOptions } from "./sandbox.js";
import { Session, type SessionOptions } from "./session.js";
import type {
  ListImagesQuery,
  ListOperationsQuery,
  OperationKind,
  OperationSummary,
  RegistryCredentials,
  WhoAmIResponse,
} from "./types.js";

export type ContreeClientOptions = TransportOptions;

export interface ImportOptions extends RequestOptions {
  /** Tag to put on the imported image. */
  tag?: string;
  credentials?: RegistryCredentials;
  /** Import time limit in whole **seconds** (wire `timeout`). Default: the server's (300). */
  timeoutSec?: number;
  /** @deprecated Older name of `timeoutSec` (seconds). */
  timeout?: number;
}

/**
 * Normalises a registry reference like the CLI does: `busybox` → `docker://docker.io/library/busybox:latest`,
 * `user/app:1` → `docker://docker.io/user/app:1`, `ghcr.io/x/y` → `docker://ghcr.io/x/y:latest`.
 * References that already carry a scheme are left alone.
 */
export function normalizeRegistryRef(ref: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) return ref;
  const parts = ref.split("/");
  const first = parts[0] ?? "";
  const hasHost = parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost");
  let path = hasHost ? parts.slice(1).join("/") : ref;
  const host = hasHost ? first : "docker.io";
  if (host === "docker.io" && !path.includes("/")) path = `library/${path}`;
  const last = path.split("/").pop() ?? "";
  if (!last.includes(":") && !last.includes("@")) path = `${path}:latest`;
  return `docker://${host}/${path}`;
}

export class Images {
  readonly #api: ContreeApi;

  constructor(api: ContreeApi) {
    this.#api = api;
  }

  private get api(): ContreeApi {
    return this.#api;
  }

  toJSON(): Record<string, never> {
    return {};
  }

  /** A handle for a known UUID, without a request. */
  handle(uuid: string): ImageHandle {
    if (!isUuid(uuid)) throw new InvalidArgumentError(`not an image UUID: ${JSON.stringify(uuid)}`);
    return new ImageHandle(this.api, uuid.toLowerCase());
  }

  /**
   * Image UUID for a reference: a UUID; `tag:NAME` (that exact tag); or a bare name, which means
   * what it means to Docker: `busybox` is `busybox:latest` (and, if there is no such tag, the
   * tag `busybox` itself, since tags here are free-form).
   */
  async resolve(ref: string, opts?: RequestOptions): Promise<string> {
    if (isUuid(ref)) return ref.toLowerCase();
    if (ref.startsWith("tag:")) return this.api.resolveTag(ref.slice(4), opts);
    if (ref === "") throw new InvalidArgumentError("image reference must not be empty");
    const last = ref.slice(ref.lastIndexOf("/") + 1);
    if (last.includes(":") || last.includes("@")) return this.api.resolveTag(ref, opts);
    try {
      return await this.api.resolveTag(`${ref}:latest`, opts);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      return this.api.resolveTag(ref, opts);
    }
  }

  /**
   * Looks the image up (see `resolve` for references) and loads its record and all its tags.
   * NotFoundError when unknown.
   */
  async get(ref: string, opts?: RequestOptions): Promise<ImageHandle> {
    return this.handle(await this.resolve(ref, opts)).info(opts);
  }

  /** All images matching the filters, page by page (pages of up to 1000). */
  list(
    query: Omit<ListImagesQuery, "limit" | "offset"> = {},
    opts: PageOptions = {},
  ): Paginator<ImageHandle> {
    return new Paginator(async (limit, offset, o) => {
      const page = await this.api.listImages({ ...query, limit, offset }, o);
      return page.images.map((record) => new ImageHandle(this.api, record.uuid, record));
    }, opts);
  }

  /** Starts a registry import; `await op.wait()` gives the image. */
  async import(ref: string, opts: ImportOptions = {}): Promise<ImportOperation> {
    const registry: { url: string; credentials?: RegistryCredentials } = { url: normalizeRegistryRef(ref) };
    if (opts.credentials) registry.credentials = opts.credentials;
    const body: Parameters<ContreeApi["importImage"]>[0] = { registry };
    if (opts.tag !== undefined) body.tag = opts.tag;
    const sec = checkSeconds("timeoutSec", opts.timeoutSec);
    const old = checkSeconds("timeout", opts.timeout);
    if (sec !== undefined && old !== undefined && sec !== old) {
      throw new InvalidArgumentError(
        "timeoutSec and its deprecated alias timeout disagree; give only timeoutSec",
      );
    }
    if ((sec ?? old) !== undefined) body.timeout = sec ?? old;
    const created = await this.api.importImage(body, opts);
    return new ImportOperation(this.api, created.uuid, (uuid) => this.handle(uuid));
  }
}

export class Operations {
  readonly #api: ContreeApi;

  constructor(api: ContreeApi) {
    this.#api = api;
  }

  private get api(): ContreeApi {
    return this.#api;
  }

  toJSON(): Record<string, never> {
    return {};
  }

  list(
    query: Omit<ListOperationsQuery, "limit" | "offset"> = {},
    opts: PageOptions = {},
  ): Paginator<OperationSummary> {
    return new Paginator((limit, offset, o) => this.api.listOperations({ ...query, limit, offset }, o), opts);
  }

  /** Fetches the operation and returns the matching handle. */
  async get(id: string, opts?: RequestOptions): Promise<RunOperation | ImportOperation> {
    const doc = await this.api.getOperation(id, opts);
    return this.handle(id, doc.kind, doc.image_uuid ?? undefined);
  }

  /** A handle without a request. For runs, `imageUuid` is the image it started from. */
  handle(id: string, kind: "instance", imageUuid?: string): RunOperation;
  handle(id: string, kind: "image_import"): ImportOperation;
  handle(id: string, kind: OperationKind, imageUuid?: string): RunOperation | ImportOperation;
  handle(id: string, kind: OperationKind, imageUuid?: string): RunOperation | ImportOperation {
    const image = (uuid: string) => new ImageHandle(this.api, uuid);
    if (kind === "image_import") return new ImportOperation(this.api, id, (uuid) => image(uuid));
    return new RunOperation(this.api, id, imageUuid ? image(imageUuid) : null, image);
  }

  cancel(id: string, opts?: RequestOptions): Promise<void> {
    return this.api.cancelOperation(id, opts);
  }
}

export class ContreeClient {
  /** One method per wire operation, wire types in and out. */
  readonly api: ContreeApi;
  readonly images: Images;
  readonly files: Files;
  readonly operations: Operations;
  /** Projects and tokens (server extension; admin tokens only). */
  readonly admin: Admin;
  private readonly transport: Transport;

  constructor(options: ContreeClientOptions = {}) {
    this.transport = new Transport(options);
    this.api = new ContreeApi(this.transport);
    this.images = new Images(this.api);
    this.files = new Files(this.api);
    this.operations = new Operations(this.api);
    this.admin = new Admin(this.api);
  }

  whoami(opts?: RequestOptions): Promise<WhoAmIResponse> {
    return this.api.whoami(opts);
  }

  /**
   * A session on `image` (a handle, a UUID, `tag:NAME` or a name like `busybox`): each `run()` starts
   * from its current image and moves it to the result; `history`, `checkout()` and `fork()` give the
   * checkpoints. Nothing starts on the server until the first run.
   */
  async session(image: ImageHandle | string, options: SessionOptions = {}): Promise<Session> {
    const start = typeof image === "string" ? await this.images.get(image) : image;
    return new Session(this.images, start, options);
  }

  /**
   * A live sandbox started from `image`: one long-lived instance to `exec()` processes in (state
   * in memory persists between them), `write()`/`read()` files, then `commit()` to an image or
   * `kill()`. It lives `timeoutSec` (default 300 s) at most.
   */
  async sandbox(image: ImageHandle | string, options: SandboxOptions = {}): Promise<Sandbox> {
    const start = typeof image === "string" ? await this.images.get(image, options) : image;
    return Sandbox.start(start, options);
  }

  /** What printing shows: the URL given (never the token). */
  toJSON(): { url?: string; timeoutMs: number } {
    return this.transport.toJSON();
  }

  /** The resolved base URL (with `/v1`), token source and project. */
  async config(): Promise<{ apiUrl: string; project?: string; source: string }> {
    const { apiUrl, project, source } = await this.transport.config();
    return project === undefined ? { apiUrl, source } : { apiUrl, project, source };
  }
}

export function createClient(options: ContreeClientOptions = {}): ContreeClient {
  return new ContreeClient(options);
}

printAs(ContreeClient, "ContreeClient");
printAs(Images, "Images");
printAs(Operations, "Operations");
