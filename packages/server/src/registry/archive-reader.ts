/**
 * Images from local archives: `docker save` (legacy: manifest.json + <diffid>.tar layers),
 * Docker ≥ 25 `docker save` (an OCI layout plus manifest.json), and OCI layout tars
 * (`skopeo copy … oci-archive:`). The result has the same shape as a registry pull, plus
 * `openBlob` to stream a layer out of the archive with its size and digest verified.
 *
 * Where the archive carries digests (OCI blobs, content-addressed names) they are checked;
 * legacy docker layers whose digest is not in their name are hashed once when opening.
 */
import type { Readable } from "node:stream";
import { type Digest, parseDigest, sha256, sha256Of } from "../core/digest.js";
import { dataLoss, invalidArgument, notFound, toAppError, unprocessable } from "../core/errors.js";
import {
  checkConfigMatchesManifest,
  MAX_METADATA_BYTES,
  manifestMediaType,
  parseImageConfig,
  parseImageManifest,
  parseIndex,
  parseJsonObject,
} from "./manifest.js";
import { type Compression, DOCKER_CONFIG, DOCKER_MANIFEST, sniffCompression } from "./media-types.js";
import { formatPlatform, hostPlatform, selectPlatform } from "./platform.js";
import type { Descriptor, ImageManifest, Platform, ResolvedImage } from "./registry-client.js";
import { TarIndex, type TarMember } from "./tar-index.js";
import { VerifyingStream } from "./verify-stream.js";

type ArchiveFormat = "oci" | "docker";

interface ArchiveImage extends ResolvedImage {
  readonly format: ArchiveFormat;
  /** Stream a blob (normally a layer of `manifest.layers`) out of the archive, verified. */
  openBlob(descriptor: Descriptor, options?: { signal?: AbortSignal | undefined }): Readable;
}

interface OpenArchiveOptions {
  /** Defaults to the host platform. */
  readonly platform?: Platform | undefined;
  /** Picks one image when the archive holds several: a RepoTag ("repo:tag") or OCI ref name ("latest"). */
  readonly tag?: string | undefined;
}

const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";
const LAYER_TYPE: Readonly<Record<Compression, string>> = {
  none: "application/vnd.docker.image.rootfs.diff.tar",
  gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  zstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
};

/** Read the image for `platform` (default: the host's) from the archive at `path`. */
export async function openImageArchive(
  path: string,
  options: OpenArchiveOptions = {},
): Promise<ArchiveImage> {
  const tar = await TarIndex.open(path);
  const want = options.platform ?? hostPlatform();
  // Docker 25 archives have both files; index.json carries digests, so it wins.
  if (tar.resolve("index.json") && tar.resolve("oci-layout")) return readOciLayout(tar, want, options.tag);
  if (tar.resolve("manifest.json")) return readDockerArchive(tar, want, options.tag);
  throw invalidArgument(
    "not a valid image archive: no index.json (OCI layout) or manifest.json (docker save)",
  );
}

// ---- OCI layout ----

async function readOciLayout(tar: TarIndex, want: Platform, tag: string | undefined): Promise<ArchiveImage> {
  const indexBytes = await readMember(tar, "index.json", "index.json");
  const index = parseJsonObject(indexBytes, "index.json of the archive");
  const entries = parseIndex(index, "index.json of the archive");
  let chosen: Descriptor | undefined;
  let name = "archive";
  if (tag !== undefined) {
    chosen = entries.find((e) => refNameMatches(e, tag));
    if (!chosen) throw notFound(`image ${JSON.stringify(tag.slice(0, 200))} not found in the archive`);
    name = tag;
  } else if (entries.length === 1) {
    chosen = entries[0];
  } else {
    chosen = selectPlatform(entries, want);
    if (!chosen) throw invalidArgument(`the archive holds ${entries.length} images; choose one by tag`);
  }
  if (!chosen) throw invalidArgument("the archive's index.json lists no images");
  if (tag === undefined)
    name = chosen.annotations?.[CONTAINERD_NAME] ?? chosen.annotations?.[REF_NAME] ?? name;

  const topDigest = chosen.digest;
  let current = await readManifestBlob(tar, chosen);
  if (current.kind === "index") {
    const inner = parseIndex(current.doc, `index ${chosen.digest}`);
    const sel = selectPlatform(inner, want);
    if (!sel) {
      const have = inner.flatMap((e) => (e.platform ? [formatPlatform(e.platform)] : [])).slice(0, 10);
      throw notFound(
        `no manifest for platform ${formatPlatform(want)} in the archive (has: ${have.join(", ") || "none"})`,
      );
    }
    current = await readManifestBlob(tar, sel);
    if (current.kind !== "manifest") throw unprocessable("nested indexes in the archive are not supported");
  }
  const manifest = parseImageManifest(current.doc, current.mediaType, `manifest ${current.digest}`);
  const configBytes = await readBlob(tar, manifest.config, "config");
  const config = parseImageConfig(configBytes, `config ${manifest.config.digest}`);
  checkConfigMatchesManifest(manifest, config, "the archive's image");
  for (const l of manifest.layers)
    if (!blobMember(tar, l.digest)) throw invalidArgument(`the archive is missing layer ${l.digest}`);
  return {
    format: "oci",
    reference: name,
    topDigest,
    manifestDigest: current.digest,
    descriptor: {
      mediaType: current.mediaType,
      digest: current.digest,
      size: current.bytes.length,
      platform: { os: config.os, architecture: config.architecture, variant: config.variant },
    },
    manifestMediaType: current.mediaType,
    manifest,
    manifestBytes: current.bytes,
    config,
    configBytes,
    platform: { os: config.os, architecture: config.architecture, variant: config.variant },
    openBlob: (d, o) => openVerified(tar, blobMember(tar, d.digest), d, o?.signal),
  };
}

function refNameMatches(d: Descriptor, tag: string): boolean {
  const ref = d.annotations?.[REF_NAME];
  const full = d.annotations?.[CONTAINERD_NAME];
  return ref === tag || full === tag || full?.endsWith(`/${tag}`) === true;
}

async function readManifestBlob(tar: TarIndex, d: Descriptor) {
  const bytes = await readBlob(tar, d, "manifest");
  const what = `manifest ${d.digest}`;
  const doc = parseJsonObject(bytes, what);
  const { mediaType, kind } = manifestMediaType(d.mediaType, doc, what);
  if (kind === "schema1") throw invalidArgument(`${what}: schema1 manifests are not supported`);
  return { digest: d.digest, mediaType, kind, doc, bytes };
}

function blobMember(tar: TarIndex, digest: Digest): TarMember | undefined {
  return tar.resolve(`blobs/sha256/${digest.slice("sha256:".length)}`);
}

async function readBlob(tar: TarIndex, d: Descriptor, what: string): Promise<Buffer> {
  const m = blobMember(tar, d.digest);
  if (!m) throw invalidArgument(`the archive is missing ${what} ${d.digest}`);
  if (m.size !== d.size) throw dataLoss(`size mismatch for ${what} ${d.digest} in the archive`);
  const bytes = await tar.readBounded(m, MAX_METADATA_BYTES, `${what} ${d.digest}`);
  const got = sha256Of(bytes);
  if (got !== d.digest) throw dataLoss(`digest mismatch for ${what} ${d.digest} in the archive: got ${got}`);
  return bytes;
}

// ---- legacy docker save ----

async function readDockerArchive(
  tar: TarIndex,
  want: Platform,
  tag: string | undefined,
): Promise<ArchiveImage> {
  const raw = await readMember(tar, "manifest.json", "manifest.json");
  let list: unknown;
  try {
    list = JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw invalidArgument("not a valid image archive: manifest.json is not JSON", { cause: err });
  }
  if (!Array.isArray(list) || list.length === 0)
    throw invalidArgument("not a valid image archive: manifest.json lists no images");
  if (list.length > 1024)
    throw invalidArgument("not a valid image archive: manifest.json lists too many images");
  const entries = list.map((e, i) => dockerEntry(e, i));
  let entry = entries[0];
  if (tag !== undefined) {
    entry = entries.find((e) =>
      e.repoTags.some(
        (t) => t === tag || t.endsWith(`/${tag}`) || t.replace(/^docker\.io\/(library\/)?/, "") === tag,
      ),
    );
    if (!entry) throw notFound(`image ${JSON.stringify(tag.slice(0, 200))} not found in the archive`);
  } else if (entries.length > 1) {
    throw invalidArgument(`the archive holds ${entries.length} images; choose one by tag`);
  }
  if (!entry) throw invalidArgument("not a valid image archive: manifest.json lists no images");

  const cfgMember = tar.resolve(entry.config);
  if (!cfgMember) throw invalidArgument("not a valid image archive: config file missing");
  const configBytes = await tar.readBounded(cfgMember, MAX_METADATA_BYTES, "config");
  const configDigest = sha256Of(configBytes);
  const named = digestInName(cfgMember.name);
  if (named !== undefined && named !== configDigest)
    throw dataLoss(`digest mismatch for the archive's config: got ${configDigest}`);
  const config = parseImageConfig(configBytes, "config of the archive");
  if (config.os !== "" && (config.os !== want.os || config.architecture !== want.architecture))
    throw notFound(
      `the archive's image is for ${config.os}/${config.architecture}, not ${formatPlatform(want)}`,
    );
  if (config.diffIds.length !== entry.layers.length)
    throw unprocessable(
      `the archive's manifest lists ${entry.layers.length} layers but its config lists ${config.diffIds.length} diff_ids`,
    );

  const members = new Map<Digest, TarMember>();
  const layers: Descriptor[] = [];
  for (const [i, layerPath] of entry.layers.entries()) {
    const m = tar.resolve(layerPath);
    if (!m) throw invalidArgument(`the archive is missing layer ${i + 1}`);
    const compression = sniffCompression(await tar.head(m, 4));
    const nameDigest = digestInName(m.name);
    const diffId = config.diffIds[i];
    // A name is trusted as the digest when it is content-addressed, or is the diff_id of an uncompressed layer.
    const trusted =
      m.name.startsWith("blobs/sha256/") ||
      (compression === "none" && nameDigest !== undefined && nameDigest === diffId);
    const digest = trusted && nameDigest !== undefined ? nameDigest : await hashMember(tar, m);
    members.set(digest, m);
    layers.push({ mediaType: LAYER_TYPE[compression], digest, size: m.size });
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: DOCKER_CONFIG, digest: configDigest, size: configBytes.length },
    layers,
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256Of(manifestBytes);
  return {
    format: "docker",
    reference: entry.repoTags[0] ?? "archive",
    topDigest: manifestDigest,
    manifestDigest,
    descriptor: {
      mediaType: DOCKER_MANIFEST,
      digest: manifestDigest,
      size: manifestBytes.length,
      platform: { os: config.os, architecture: config.architecture, variant: config.variant },
    },
    manifestMediaType: DOCKER_MANIFEST,
    manifest,
    manifestBytes,
    config,
    configBytes,
    platform: { os: config.os, architecture: config.architecture, variant: config.variant },
    openBlob: (d, o) => openVerified(tar, members.get(d.digest), d, o?.signal),
  };
}

function dockerEntry(e: unknown, i: number): { config: string; repoTags: string[]; layers: string[] } {
  const what = `not a valid image archive: manifest.json entry ${i}`;
  if (typeof e !== "object" || e === null) throw invalidArgument(what);
  const o = e as Record<string, unknown>;
  if (typeof o["Config"] !== "string") throw invalidArgument(`${what} has no Config`);
  if (!Array.isArray(o["Layers"]) || o["Layers"].some((l) => typeof l !== "string"))
    throw invalidArgument(`${what} has no Layers`);
  const repoTags = Array.isArray(o["RepoTags"])
    ? o["RepoTags"].filter((t): t is string => typeof t === "string")
    : [];
  return { config: o["Config"], repoTags, layers: o["Layers"] as string[] };
}

function digestInName(name: string): Digest | undefined {
  const m = /(?:^|\/)(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.tar|\.json)?$/.exec(name);
  return m?.[1] ? parseDigest(`sha256:${m[1]}`) : undefined;
}

async function hashMember(tar: TarIndex, m: TarMember): Promise<Digest> {
  const h = sha256();
  for await (const c of tar.stream(m)) h.update(c as Buffer);
  return parseDigest(`sha256:${h.digest("hex")}`);
}

// ---- shared ----

async function readMember(tar: TarIndex, name: string, what: string): Promise<Buffer> {
  const m = tar.resolve(name);
  if (!m) throw invalidArgument(`not a valid image archive: ${what} missing`);
  return tar.readBounded(m, MAX_METADATA_BYTES, what);
}

function openVerified(
  tar: TarIndex,
  m: TarMember | undefined,
  d: Descriptor,
  signal: AbortSignal | undefined,
): Readable {
  if (!m) throw notFound(`blob ${d.digest} is not in the archive`);
  const verifier = new VerifyingStream({ digest: d.digest, size: d.size }, `blob ${d.digest}`);
  const src = tar.stream(m, signal);
  src.on("error", (err) => verifier.destroy(toAppError(err)));
  verifier.on("close", () => src.destroy());
  return src.pipe(verifier);
}
