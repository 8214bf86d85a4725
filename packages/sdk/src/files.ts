// Content-addressed uploads. Bytes, text and Blobs are hashed with Web Crypto (every runtime has it); a
// file on this machine is named explicitly (`{ path }`), needs node:fs and is hashed incrementally with
// node:crypto, both loaded only when a path is given. A string is always content, never a path.

import type { ContreeApi } from "./api.js";
import { InvalidArgumentError, isNotFound, LocalFileError } from "./errors.js";
import type { RequestBody, RequestOptions } from "./http.js";
import { type PageOptions, Paginator } from "./paginator.js";
import { printAs } from "./printable.js";
import type { FileInfo, FileResponse, ListFilesQuery } from "./types.js";

/** A file on this machine (Node, Bun, Deno), read when the call needs it. */
export interface LocalPath {
  path: string;
}

/** Content: text (UTF-8), bytes or a Blob; or `{ path }` for a file on this machine. */
export type FileInput = string | Uint8Array | ArrayBuffer | Blob | LocalPath;

export interface FileSource {
  sha256: string;
  size: number;
  /** A fresh body per call, so a replayed upload does not reuse a consumed stream. */
  body: () => RequestBody;
  /** Permission bits of a local file (`{ path }` inputs only). */
  mode?: number;
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A Uint8Array backed by a plain ArrayBuffer (what fetch and Web Crypto accept). */
function plainBytes(data: Uint8Array | ArrayBuffer): Uint8Array<ArrayBuffer> {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data.buffer instanceof ArrayBuffer) return data as Uint8Array<ArrayBuffer>;
  return new Uint8Array(data); // copy out of a SharedArrayBuffer
}

export async function sha256Hex(data: Uint8Array | ArrayBuffer): Promise<string> {
  return hex(await globalThis.crypto.subtle.digest("SHA-256", plainBytes(data)));
}

export function isLocalPath(input: unknown): input is LocalPath {
  return (
    typeof input === "object" &&
    input !== null &&
    !(input instanceof Uint8Array) &&
    !(input instanceof ArrayBuffer) &&
    !(input instanceof Blob) &&
    typeof (input as { path?: unknown }).path === "string"
  );
}

/** Reads a local file; every failure (missing, unreadable, a directory, no node:fs) names the path. */
async function pathSource(path: string): Promise<FileSource> {
  try {
    const fs = await import("node:fs");
    const { createHash } = await import("node:crypto");
    const stat = await fs.promises.stat(path);
    if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTFILE" });
    const mode = stat.mode & 0o7777;
    if (typeof fs.openAsBlob === "function") {
      const blob = await fs.openAsBlob(path);
      const hash = createHash("sha256");
      const reader = blob.stream().getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) hash.update(r.value);
      return { sha256: hash.digest("hex"), size: blob.size, body: () => blob, mode };
    }
    const bytes = plainBytes(await fs.promises.readFile(path));
    return {
      sha256: createHash("sha256").update(bytes).digest("hex"),
      size: bytes.byteLength,
      body: () => bytes,
      mode,
    };
  } catch (cause) {
    throw new LocalFileError(path, cause);
  }
}

export async function fileSource(input: FileInput): Promise<FileSource> {
  if (typeof input === "string") {
    const bytes = new TextEncoder().encode(input);
    return { sha256: await sha256Hex(bytes), size: bytes.byteLength, body: () => bytes };
  }
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    const bytes = plainBytes(input);
    return { sha256: await sha256Hex(bytes), size: bytes.byteLength, body: () => bytes };
  }
  if (input instanceof Blob) {
    const bytes = new Uint8Array(await input.arrayBuffer());
    return { sha256: await sha256Hex(bytes), size: bytes.byteLength, body: () => input };
  }
  if (isLocalPath(input)) {
    // A stream body for a file that changed after hashing would upload other bytes than hashed;
    // the server hashes what it receives, so the record still describes what was stored.
    return pathSource(input.path);
  }
  throw new InvalidArgumentError(
    "file content must be a string, bytes, a Blob, or { path } for a file on this machine",
  );
}

/** `files.ensure` for an already hashed source: look it up by hash, upload only on 404. */
export async function ensureStored(
  api: ContreeApi,
  src: FileSource,
  opts?: RequestOptions,
): Promise<FileResponse> {
  try {
    const found = await api.getFile(src.sha256, opts);
    return { uuid: found.uuid, sha256: found.sha256, size: found.size };
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  return api.uploadFile(src.body, opts);
}

export class Files {
  readonly #api: ContreeApi;

  constructor(api: ContreeApi) {
    this.#api = api;
  }

  toJSON(): Record<string, never> {
    return {};
  }

  /** Uploads without looking first (the server deduplicates by SHA-256 anyway). */
  async upload(input: FileInput, opts?: RequestOptions): Promise<FileResponse> {
    const src = await fileSource(input);
    return this.#api.uploadFile(src.body, opts);
  }

  /**
   * Makes sure the content is stored and returns its record: hash locally, look it up by hash, upload only
   * on 404. The lookup is a GET rather than HEAD because spawning needs the file's uuid.
   */
  async ensure(input: FileInput, opts?: RequestOptions): Promise<FileResponse> {
    return ensureStored(this.#api, await fileSource(input), opts);
  }

  /** File record by content hash; NotFoundError if absent. */
  get(sha256: string, opts?: RequestOptions): Promise<FileInfo> {
    return this.#api.getFile(sha256, opts);
  }

  /** HEAD /v1/files/{sha256}. */
  exists(sha256: string, opts?: RequestOptions): Promise<boolean> {
    return this.#api.headFile(sha256, opts);
  }

  list(query: Omit<ListFilesQuery, "limit" | "offset"> = {}, opts: PageOptions = {}): Paginator<FileInfo> {
    return new Paginator(
      async (limit, offset, o) => (await this.#api.listFiles({ ...query, limit, offset }, o)).files,
      opts,
    );
  }
}

printAs(Files, "Files");
