/**
 * RegistryClient over the OCI distribution HTTP API, split as containerd's remotes/docker is:
 * the transport (registry-transport.ts: auth, redirects under the destination policy, retries,
 * timeouts), the resolver (manifest-resolver.ts: reference → manifest/index → platform manifest
 * → config) and the fetcher (blob-fetcher.ts: verified, resumable blob streams).
 */
import type { Readable } from "node:stream";
import { BlobFetcher } from "./blob-fetcher.js";
import { ManifestResolver } from "./manifest-resolver.js";
import type { ImageReference } from "./reference.js";
import type {
  Descriptor,
  FetchBlobOptions,
  RegistryClient,
  ResolvedImage,
  ResolveOptions,
} from "./registry-client.js";
import { RegistryTransport, type TransportOptions } from "./registry-transport.js";

export type HttpRegistryClientOptions = TransportOptions;

export class HttpRegistryClient implements RegistryClient {
  readonly #resolver: ManifestResolver;
  readonly #fetcher: BlobFetcher;

  constructor(options: HttpRegistryClientOptions = {}) {
    const transport = new RegistryTransport(options);
    this.#resolver = new ManifestResolver(transport);
    this.#fetcher = new BlobFetcher(transport);
  }

  resolveManifest(ref: ImageReference, options: ResolveOptions = {}): Promise<ResolvedImage> {
    return this.#resolver.resolve(ref, options);
  }

  fetchBlob(ref: ImageReference, descriptor: Descriptor, options: FetchBlobOptions = {}): Promise<Readable> {
    return this.#fetcher.fetch(ref, descriptor, options);
  }
}
