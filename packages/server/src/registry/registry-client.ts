/**
 * RegistryClient: an image reference in, verified bytes out.
 *
 * `resolveManifest` turns a reference into the image manifest for one platform (following an
 * OCI index or Docker manifest list), with the manifest and config bytes verified against
 * their digests. `fetchBlob` streams a blob and fails the stream (AppError data_loss) unless
 * its size and sha256 match the descriptor. Credentials are used for the call they are passed
 * to and are never logged or stored; only short-lived bearer tokens are cached, in memory.
 *
 * The archive reader (archive-reader.ts) returns the same `ResolvedImage` shape so importers
 * treat a registry pull and a local `docker save`/OCI archive alike.
 */
import type { Readable } from "node:stream";
import type { Digest } from "../core/digest.js";
import type { ImageReference } from "./reference.js";

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly platform?: Platform | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/** An OCI image manifest or Docker v2 schema 2 manifest (same shape). */
export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

/** The parts of the image config JSON that importers use; `raw` is the whole parsed object. */
export interface ImageConfig {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string | undefined;
  /** Uncompressed layer digests, one per manifest layer, in order. */
  readonly diffIds: readonly Digest[];
  readonly env: readonly string[];
  readonly cmd: readonly string[] | undefined;
  readonly entrypoint: readonly string[] | undefined;
  readonly workingDir: string | undefined;
  readonly user: string | undefined;
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface ResolvedImage {
  /** Canonical reference string ("docker.io/library/busybox:latest", or "archive:<name>"). */
  readonly reference: string;
  /** Digest the tag pointed to: the index/list digest if there was one, else the manifest's. */
  readonly topDigest: Digest;
  /** Digest of the platform-specific manifest. */
  readonly manifestDigest: Digest;
  /** Descriptor of the platform-specific manifest (as an index would list it). */
  readonly descriptor: Descriptor;
  readonly manifestMediaType: string;
  readonly manifest: ImageManifest;
  readonly manifestBytes: Buffer;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
  /** Platform of the chosen manifest (from the config). */
  readonly platform: Platform;
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface ResolveOptions {
  /** Defaults to the host platform (linux + process.arch). */
  readonly platform?: Platform | undefined;
  /** Empty username and password mean anonymous (the MCP client always sends both). */
  readonly credentials?: Credentials | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface FetchBlobOptions {
  readonly credentials?: Credentials | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface RegistryClient {
  resolveManifest(ref: ImageReference, options?: ResolveOptions): Promise<ResolvedImage>;
  /**
   * A stream of the blob's bytes. It errors with AppError data_loss ("size mismatch" /
   * "digest mismatch") instead of ending when the bytes do not match the descriptor, so a
   * consumer must treat only a clean 'end' as success.
   */
  fetchBlob(ref: ImageReference, descriptor: Descriptor, options?: FetchBlobOptions): Promise<Readable>;
}
