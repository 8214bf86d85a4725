// Low-level client: one method per wire operation of contree-api.md section 2, wire types in and out.
// The ergonomic handles (images, operations, files) are built on top of this.

import { ProtocolError } from "./errors.js";
import {
  type CallSpec,
  type QueryValue,
  type RequestBody,
  type RequestOptions,
  seg,
  type Transport,
} from "./http.js";
import { printAs } from "./printable.js";
import type {
  AdminProject,
  AdminToken,
  ClosableStreamRepr,
  CreatedToken,
  DiffQuery,
  DirectoryList,
  ExecSpec,
  FileInfo,
  FileList,
  FileResponse,
  GrepQuery,
  GrepResult,
  Image,
  ImageDeleteQuery,
  ImageDeleteResponse,
  ImageDiff,
  ImageImportRequest,
  ImageList,
  InstanceResult,
  InstanceSpawnRequest,
  InstanceSpawnResponse,
  ListFilesQuery,
  ListImagesQuery,
  ListOperationsQuery,
  OperationCreatedResponse,
  OperationEventsQuery,
  OperationResponse,
  OperationSummary,
  PortUrlRequest,
  PortUrlResponse,
  SubprocessStartResponse,
  TimeFilter,
  TokenCreateRequest,
  WhoAmIResponse,
} from "./types.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

/** Last non-empty path segment of a URL or path, if it is a UUID (`Location: <uuid>/` and friends). */
export function uuidFromLocation(location: string | null | undefined): string | undefined {
  if (!location) return undefined;
  const path = location.split(/[?#]/)[0] ?? "";
  const last = path
    .split("/")
    .filter((s) => s !== "")
    .pop();
  return last && isUuid(last) ? last.toLowerCase() : undefined;
}

function time(v: TimeFilter | undefined): QueryValue {
  return v instanceof Date ? v.toISOString() : v;
}

export interface EventStreamRequest extends OperationEventsQuery {
  /** Sent as `Last-Event-Id` (exclusive resume cursor). */
  lastEventId?: number;
}

export class ContreeApi {
  /** @internal The client builds it: use `client.api`. */
  constructor(readonly transport: Transport) {}

  /** The transport's printable view (URL and deadline); never the token. */
  toJSON(): { url?: string; timeoutMs: number } {
    return this.transport.toJSON();
  }

  // ------------------------------------------------------------ whoami

  whoami(opts?: RequestOptions): Promise<WhoAmIResponse> {
    return this.transport.json({ method: "GET", path: "/whoami" }, opts);
  }

  // ------------------------------------------------------------ images

  listImages(query: ListImagesQuery = {}, opts?: RequestOptions): Promise<ImageList> {
    const { since, until, ...rest } = query;
    return this.transport.json(
      { method: "GET", path: "/images", query: { ...rest, since: time(since), until: time(until) } },
      opts,
    );
  }

  async importImage(body: ImageImportRequest, opts?: RequestOptions): Promise<OperationCreatedResponse> {
    return this.created({ method: "POST", path: "/images/import", json: body }, opts);
  }

  tagImage(imageUuid: string, tag: string, opts?: RequestOptions): Promise<Image> {
    return this.transport.json(
      { method: "PATCH", path: `/images/${seg(imageUuid)}/tag`, json: { tag } },
      opts,
    );
  }

  /** Removes `tag` (or every tag when omitted). Returns the image, or undefined if the server sent 204. */
  untagImage(imageUuid: string, tag?: string, opts?: RequestOptions): Promise<Image | undefined> {
    return this.transport.json(
      { method: "DELETE", path: `/images/${seg(imageUuid)}/tag`, query: { tag } },
      opts,
    );
  }

  /**
   * Deletes an image of the caller's project (extension; needs the `delete_image` permission).
   * A tagged image is refused (409) unless `force`, which removes its tags too. Children keep
   * working; a deleted image answers 404 everywhere.
   */
  deleteImage(
    imageUuid: string,
    query: ImageDeleteQuery = {},
    opts?: RequestOptions,
  ): Promise<ImageDeleteResponse> {
    return this.transport.json(
      { method: "DELETE", path: `/images/${seg(imageUuid)}`, query: { force: query.force } },
      opts,
    );
  }

  // ------------------------------------------------------------ files

  /** Uploads raw bytes. `body` is a factory so a replayed request (425/429) gets a fresh body. */
  uploadFile(body: () => RequestBody | Promise<RequestBody>, opts?: RequestOptions): Promise<FileResponse> {
    return this.transport.json(
      { method: "POST", path: "/files", body, contentType: "application/octet-stream" },
      opts,
    );
  }

  listFiles(query: ListFilesQuery = {}, opts?: RequestOptions): Promise<FileList> {
    const { since, until, ...rest } = query;
    return this.transport.json(
      { method: "GET", path: "/files", query: { ...rest, since: time(since), until: time(until) } },
      opts,
    );
  }

  getFile(sha256: string, opts?: RequestOptions): Promise<FileInfo> {
    return this.transport.json({ method: "GET", path: `/files/${seg(sha256.toLowerCase())}` }, opts);
  }

  headFile(sha256: string, opts?: RequestOptions): Promise<boolean> {
    return this.transport.ok(
      { method: "HEAD", path: `/files/${seg(sha256.toLowerCase())}`, expect: [404] },
      opts,
    );
  }

  // ------------------------------------------------------------ instances and operations

  spawnInstance(body: InstanceSpawnRequest, opts?: RequestOptions): Promise<InstanceSpawnResponse> {
    return this.created({ method: "POST", path: "/instances", json: body }, opts);
  }

  listOperations(query: ListOperationsQuery = {}, opts?: RequestOptions): Promise<OperationSummary[]> {
    const { since, until, ...rest } = query;
    return this.transport.json(
      { method: "GET", path: "/operations", query: { ...rest, since: time(since), until: time(until) } },
      opts,
    );
  }

  getOperation(operationId: string, opts?: RequestOptions): Promise<OperationResponse> {
    return this.transport.json({ method: "GET", path: `/operations/${seg(operationId)}` }, opts);
  }

  /** 409 (ConflictError) when the operation is already terminal. */
  async cancelOperation(operationId: string, opts?: RequestOptions): Promise<void> {
    await this.transport.text({ method: "DELETE", path: `/operations/${seg(operationId)}` }, opts);
  }

  /** Opens the SSE stream; the caller reads and parses the body (see events.ts). */
  operationEvents(
    operationId: string,
    req: EventStreamRequest = {},
    opts: RequestOptions = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (req.lastEventId !== undefined) headers["Last-Event-Id"] = String(req.lastEventId);
    return this.transport.request(
      {
        method: "GET",
        path: `/operations/${seg(operationId)}/events`,
        query: { follow: req.follow ? 1 : undefined, spid: req.spid, since: req.since },
        accept: "text/event-stream",
        stream: true,
      },
      { ...opts, headers },
    );
  }

  startSubprocess(
    operationId: string,
    spec: ExecSpec,
    opts?: RequestOptions,
  ): Promise<SubprocessStartResponse> {
    return this.transport.json(
      { method: "POST", path: `/operations/${seg(operationId)}/subprocesses`, json: spec },
      opts,
    );
  }

  getSubprocess(operationId: string, spid: number, opts?: RequestOptions): Promise<InstanceResult> {
    return this.transport.json(
      { method: "GET", path: `/operations/${seg(operationId)}/subprocesses/${seg(spid)}` },
      opts,
    );
  }

  async signalSubprocess(
    operationId: string,
    spid: number,
    signal = "TERM",
    opts?: RequestOptions,
  ): Promise<void> {
    await this.transport.text(
      {
        method: "DELETE",
        path: `/operations/${seg(operationId)}/subprocesses/${seg(spid)}`,
        query: { signal },
      },
      opts,
    );
  }

  async writeSubprocessStdin(
    operationId: string,
    spid: number,
    stdin: ClosableStreamRepr,
    opts?: RequestOptions,
  ): Promise<void> {
    await this.transport.text(
      {
        method: "POST",
        path: `/operations/${seg(operationId)}/subprocesses/${seg(spid)}/stdin`,
        json: stdin,
      },
      opts,
    );
  }

  // ------------------------------------------------------------ ports (extension)

  /**
   * A signed, expiring URL of a port of a running instance (no token needed to use it). 409 once
   * the instance has finished, 425 before it runs.
   */
  createPortUrl(
    operationId: string,
    port: number,
    body: PortUrlRequest = {},
    opts?: RequestOptions,
  ): Promise<PortUrlResponse> {
    return this.transport.json(
      { method: "POST", path: `/operations/${seg(operationId)}/ports/${seg(port)}/url`, json: body },
      opts,
    );
  }

  // ------------------------------------------------------------ inspect

  /**
   * Tag → image UUID via `GET /v1/inspect/?tag=` (302). fetch would follow the redirect, so ask for
   * `redirect: "manual"` and read Location; browsers hide manual redirects (opaqueredirect), so there we
   * follow and read the final URL instead.
   */
  async resolveTag(tag: string, opts?: RequestOptions): Promise<string> {
    const spec: CallSpec = { method: "GET", path: "/inspect/", query: { tag }, redirect: "manual" };
    let res = await this.transport.request(spec, opts);
    if (res.type === "opaqueredirect") {
      res = await this.transport.request({ ...spec, redirect: "follow" }, opts);
    }
    let uuid =
      res.status >= 300 && res.status < 400 ? uuidFromLocation(res.headers.get("location")) : undefined;
    if (!uuid && res.ok) {
      uuid = uuidFromLocation(res.url);
      if (!uuid) {
        const body = (await res.json().catch(() => undefined)) as { uuid?: unknown } | undefined;
        if (typeof body?.uuid === "string") uuid = body.uuid;
      }
    }
    await res.body?.cancel().catch(() => undefined);
    if (!uuid)
      throw new ProtocolError(`tag lookup for "${tag}" answered ${res.status} without an image location`);
    return uuid;
  }

  inspectImage(imageUuid: string, opts?: RequestOptions): Promise<Image> {
    return this.transport.json({ method: "GET", path: `/inspect/${seg(imageUuid)}/` }, opts);
  }

  headImage(imageUuid: string, opts?: RequestOptions): Promise<boolean> {
    return this.transport.ok({ method: "HEAD", path: `/inspect/${seg(imageUuid)}/`, expect: [404] }, opts);
  }

  listDirectory(imageUuid: string, path = "/", opts?: RequestOptions): Promise<DirectoryList> {
    return this.transport.json(
      { method: "GET", path: `/inspect/${seg(imageUuid)}/list`, query: { path } },
      opts,
    );
  }

  /** The `ls -l`-like text form (`text=1`). */
  listDirectoryText(imageUuid: string, path = "/", opts?: RequestOptions): Promise<string> {
    return this.transport.text(
      {
        method: "GET",
        path: `/inspect/${seg(imageUuid)}/list`,
        query: { path, text: 1 },
        accept: "text/plain",
      },
      opts,
    );
  }

  /** Streaming download; the Response body is the file content. */
  download(imageUuid: string, path: string, opts?: RequestOptions): Promise<Response> {
    return this.transport.request(
      {
        method: "GET",
        path: `/inspect/${seg(imageUuid)}/download`,
        query: { path },
        accept: "application/octet-stream",
        stream: true,
      },
      opts,
    );
  }

  downloadBytes(imageUuid: string, path: string, opts?: RequestOptions): Promise<Uint8Array> {
    return this.transport.bytes(
      {
        method: "GET",
        path: `/inspect/${seg(imageUuid)}/download`,
        query: { path },
        accept: "application/octet-stream",
      },
      opts,
    );
  }

  /** HEAD download: true 200, false 404. A directory answers 422 (UnprocessableError). */
  headDownload(imageUuid: string, path: string, opts?: RequestOptions): Promise<boolean> {
    return this.transport.ok(
      { method: "HEAD", path: `/inspect/${seg(imageUuid)}/download`, query: { path }, expect: [404] },
      opts,
    );
  }

  /** Streaming PAX tar of `path` and everything below it. */
  archive(imageUuid: string, path: string, opts?: RequestOptions): Promise<Response> {
    return this.transport.request(
      {
        method: "GET",
        path: `/inspect/${seg(imageUuid)}/archive`,
        query: { path },
        accept: "application/x-tar",
        stream: true,
      },
      opts,
    );
  }

  headArchive(imageUuid: string, path: string, opts?: RequestOptions): Promise<boolean> {
    return this.transport.ok(
      { method: "HEAD", path: `/inspect/${seg(imageUuid)}/archive`, query: { path }, expect: [404] },
      opts,
    );
  }

  grep(imageUuid: string, query: GrepQuery, opts?: RequestOptions): Promise<GrepResult> {
    const q: Record<string, QueryValue> = { ...query };
    return this.transport.json({ method: "GET", path: `/inspect/${seg(imageUuid)}/grep`, query: q }, opts);
  }

  /** Extension: what changed from `against` (default: the parent) to the image. */
  diffImage(imageUuid: string, query: DiffQuery = {}, opts?: RequestOptions): Promise<ImageDiff> {
    const q: Record<string, QueryValue> = { ...query, text: query.text ? true : undefined };
    return this.transport.json({ method: "GET", path: `/inspect/${seg(imageUuid)}/diff`, query: q }, opts);
  }

  // ------------------------------------------------------------ admin (extension, admin tokens only)

  listProjects(opts?: RequestOptions): Promise<{ projects: AdminProject[] }> {
    return this.transport.json({ method: "GET", path: "/admin/projects" }, opts);
  }

  createProject(name: string, opts?: RequestOptions): Promise<AdminProject> {
    return this.transport.json({ method: "POST", path: "/admin/projects", json: { name } }, opts);
  }

  listTokens(query: { project?: string } = {}, opts?: RequestOptions): Promise<{ tokens: AdminToken[] }> {
    return this.transport.json({ method: "GET", path: "/admin/tokens", query: { ...query } }, opts);
  }

  /** The answer holds the new token's secret (`token`): the only time the server shows it. */
  createToken(body: TokenCreateRequest, opts?: RequestOptions): Promise<CreatedToken> {
    return this.transport.json({ method: "POST", path: "/admin/tokens", json: body }, opts);
  }

  /** Revokes at once (the caller's own token too); an unknown id is a NotFoundError. */
  async revokeToken(tokenId: string, opts?: RequestOptions): Promise<void> {
    await this.transport.text({ method: "DELETE", path: `/admin/tokens/${seg(tokenId)}` }, opts);
  }

  // ------------------------------------------------------------ helpers

  /** POSTs that start an operation: take `uuid` from the body, else the last segment of `Location`. */
  private async created<T extends OperationCreatedResponse>(
    spec: CallSpec,
    opts?: RequestOptions,
  ): Promise<T> {
    return this.transport.read(spec, opts ?? {}, async (res) => {
      const text = await res.text();
      let body: Partial<T> = {};
      if (text) {
        try {
          body = JSON.parse(text) as Partial<T>;
        } catch (cause) {
          throw new ProtocolError(`invalid JSON from ${spec.method} ${spec.path}`, { cause });
        }
      }
      const uuid = typeof body.uuid === "string" ? body.uuid : uuidFromLocation(res.headers.get("location"));
      if (!uuid) throw new ProtocolError(`${spec.method} ${spec.path} answered without an operation id`);
      return { ...body, uuid } as T;
    });
  }
}

printAs(ContreeApi, "ContreeApi");
