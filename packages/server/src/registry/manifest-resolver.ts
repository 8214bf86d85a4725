/**
 * The resolver: a reference → its manifest or index (Accept with all four manifest types) → the
 * manifest for one platform → the image config, every document verified against its digest.
 */
import { type Digest, sha256Of } from "../core/digest.js";
import { AppError, invalidArgument, notFound, unprocessable } from "../core/errors.js";
import { readBounded } from "./http-body.js";
import {
  checkConfigMatchesManifest,
  MAX_METADATA_BYTES,
  manifestMediaType,
  parseImageConfig,
  parseImageManifest,
  parseIndex,
  parseJsonObject,
} from "./manifest.js";
import { MANIFEST_ACCEPT } from "./media-types.js";
import { formatPlatform, hostPlatform, selectPlatform } from "./platform.js";
import { formatReference, type ImageReference, manifestSelector } from "./reference.js";
import type {
  Descriptor,
  ImageManifest,
  Platform,
  ResolvedImage,
  ResolveOptions,
} from "./registry-client.js";
import type { Session } from "./registry-session.js";
import type { RegistryTransport } from "./registry-transport.js";

interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  kind: "index" | "manifest";
  doc: Record<string, unknown>;
  bytes: Buffer;
}

export class ManifestResolver {
  constructor(private readonly transport: RegistryTransport) {}

  async resolve(ref: ImageReference, options: ResolveOptions = {}): Promise<ResolvedImage> {
    const s = this.transport.session(ref, options.credentials, options.signal);
    const want = options.platform ?? hostPlatform();
    const refText = formatReference(ref);
    const selector = manifestSelector(ref);

    let top = await this.#getManifest(s, selector, ref.digest, undefined, refText);
    const topDigest = top.digest;
    if (top.kind === "index") {
      const entries = parseIndex(top.doc, `index ${refText}`);
      const chosen = selectPlatform(entries, want);
      if (!chosen) {
        const have = entries.flatMap((e) => (e.platform ? [formatPlatform(e.platform)] : [])).slice(0, 10);
        throw notFound(
          `no manifest for platform ${formatPlatform(want)} in ${refText} (has: ${have.join(", ") || "none"})`,
        );
      }
      top = await this.#getManifest(s, chosen.digest, chosen.digest, chosen.size, refText);
      if (top.kind !== "manifest")
        throw unprocessable(
          `manifest ${chosen.digest} of ${refText} is a nested index, which is not supported`,
        );
    }
    const what = `manifest ${top.digest}`;
    const manifest: ImageManifest = parseImageManifest(top.doc, top.mediaType, what);
    const configBytes = await this.#readBlobBounded(s, manifest.config, `config of ${refText}`);
    const config = parseImageConfig(configBytes, `config ${manifest.config.digest}`);
    checkConfigMatchesManifest(manifest, config, refText);
    const platform: Platform = { os: config.os, architecture: config.architecture, variant: config.variant };
    return {
      reference: refText,
      topDigest,
      manifestDigest: top.digest,
      descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length, platform },
      manifestMediaType: top.mediaType,
      manifest,
      manifestBytes: top.bytes,
      config,
      configBytes,
      platform,
    };
  }

  async #getManifest(
    s: Session,
    selector: string,
    expectDigest: Digest | undefined,
    expectSize: number | undefined,
    refText: string,
  ): Promise<FetchedManifest> {
    const what = expectDigest ? `manifest ${expectDigest}` : `manifest for ${refText}`;
    const res = await this.transport.send(
      s,
      `manifests/${selector}`,
      { accept: MANIFEST_ACCEPT },
      `manifest ${refText}`,
    );
    const bytes = await readBounded(res, MAX_METADATA_BYTES, what, s.signal);
    const digest = sha256Of(bytes);
    if (expectDigest !== undefined && digest !== expectDigest) throw dataLossMismatch(what, digest);
    if (expectSize !== undefined && bytes.length !== expectSize)
      throw new AppError(
        "data_loss",
        `size mismatch for ${what}: got ${bytes.length} bytes, expected ${expectSize}`,
      );
    const header = res.headers.get("docker-content-digest");
    if (expectDigest === undefined && header !== null && header.startsWith("sha256:") && header !== digest)
      throw dataLossMismatch(what, digest);
    const doc = parseJsonObject(bytes, what);
    const { mediaType, kind } = manifestMediaType(res.headers.get("content-type") ?? undefined, doc, what);
    if (kind === "schema1") throw invalidArgument(`${what}: schema1 manifests are not supported`);
    return { digest, mediaType, kind, doc, bytes };
  }

  async #readBlobBounded(s: Session, d: Descriptor, what: string): Promise<Buffer> {
    if (d.size > MAX_METADATA_BYTES)
      throw unprocessable(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
    const res = await this.transport.send(s, `blobs/${d.digest}`, {}, `blob ${d.digest}`);
    const bytes = await readBounded(res, d.size, what, s.signal);
    if (bytes.length !== d.size)
      throw new AppError(
        "data_loss",
        `size mismatch for ${what}: got ${bytes.length} bytes, expected ${d.size}`,
      );
    const got = sha256Of(bytes);
    if (got !== d.digest) throw dataLossMismatch(what, got);
    return bytes;
  }
}

function dataLossMismatch(what: string, got: string): AppError {
  return new AppError("data_loss", `digest mismatch for ${what}: got ${got}`);
}
