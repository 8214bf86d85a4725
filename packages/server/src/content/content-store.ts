import type { Readable } from "node:stream";
import type { Digest } from "../core/digest.js";

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** A listed blob: when it was last written (an ingest of the same bytes writes it again). */
export interface ListedBlob extends BlobInfo {
  modifiedAt: number;
}

export interface IngestOptions {
  /** Refuse (payload_too_large) as soon as more bytes than this arrive. */
  maxBytes?: number;
  /** When given, the blob is committed only if it matches (data_loss otherwise). */
  expected?: { digest: Digest; size?: number };
  signal?: AbortSignal;
}

/**
 * Content-addressed, immutable blobs with verified ingest: bytes are hashed while they stream to
 * a temporary location and become visible under their digest only after size and digest are
 * checked and the data is durable. The store keeps no references; the metadata store owns those.
 */
export interface ContentStore {
  ingest(source: Readable, o?: IngestOptions): Promise<BlobInfo>;
  info(digest: Digest): Promise<BlobInfo | undefined>;
  /** Streams the blob (optionally a byte range, `end` exclusive); not_found when absent. */
  read(digest: Digest, o?: { start?: number; end?: number }): Promise<Readable>;
  /** Removes a blob; only garbage collection calls this. Missing blobs are not an error. */
  delete(digest: Digest): Promise<void>;
  /**
   * Every committed blob. Garbage collection leaves young ones (`modifiedAt`) alone: an upload
   * may have committed its blob and not yet recorded the row that names it.
   */
  list(): AsyncIterable<ListedBlob>;
  /** Removes unfinished ingests left by a crash; returns how many. */
  reclaim(): Promise<number>;
  /** Where a blob lives on local disk, when the backend has one (lets runs copy without streaming). */
  localPath?(digest: Digest): string;
}
