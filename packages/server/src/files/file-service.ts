import type { Readable } from "node:stream";
import type { ContentStore } from "../content/content-store.js";
import { digestFromHex, hexOf } from "../core/digest.js";
import { invalidArgument, notFound } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { FileRecord } from "../metadata/repos/file-repo.js";
import type { PageQuery } from "../metadata/repos/page.js";

/** Uploaded files: blobs in the content store, one record per project and digest. */
export class FileService {
  constructor(
    private readonly store: MetadataStore,
    private readonly content: ContentStore,
    private readonly maxUploadBytes: number,
  ) {}

  /** Streams the body into the content store (verified, atomic) and records it for the project. */
  async upload(projectId: string, body: Readable, signal?: AbortSignal): Promise<FileRecord> {
    let blob: Awaited<ReturnType<ContentStore["ingest"]>>;
    try {
      blob = await this.content.ingest(body, {
        maxBytes: this.maxUploadBytes,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      // Whatever stopped the ingest (too large, the disk full part-way), the rest of the body is
      // still coming: left unread, the connection was reset under the client's next request.
      if (!body.readableEnded) drainThenDrop(body);
      throw err;
    }
    const { file } = await this.store.files.upsert(projectId, hexOf(blob.digest), blob.size);
    return file;
  }

  async bySha(projectId: string, sha: string): Promise<FileRecord> {
    const hex = sha.toLowerCase().replace(/^sha256:/, "");
    digestFromHex(hex); // 400 on anything that is not a sha256
    const f = await this.store.files.findBySha(projectId, hex);
    if (!f) throw notFound("file not found");
    return f;
  }

  async byId(projectId: string, id: string): Promise<FileRecord> {
    if (!isUuid(id.toLowerCase())) throw invalidArgument("uuid must be a canonical UUID");
    const f = await this.store.files.findById(projectId, id.toLowerCase());
    if (!f) throw notFound("file not found");
    return f;
  }

  list(projectId: string, page: PageQuery): Promise<FileRecord[]> {
    return this.store.files.list(projectId, page);
  }
}

/**
 * After a refused upload (413, 507) the client is usually still sending: read and discard for a short while so it
 * sees the answer instead of a reset connection, then drop the connection if it goes on.
 */
function drainThenDrop(body: Readable, graceMs = 5000): void {
  const timer = setTimeout(() => body.destroy(), graceMs);
  timer.unref();
  body.once("end", () => clearTimeout(timer));
  body.once("close", () => clearTimeout(timer));
  body.resume();
}
