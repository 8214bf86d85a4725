/**
 * Parsing of manifests, indexes and image configs from untrusted bytes. Every field used later
 * is type-checked here; sizes and counts are bounded so a hostile registry or archive cannot
 * make us allocate without limit or walk absurd structures.
 */
import { type Digest, parseDigest } from "../core/digest.js";
import { invalidArgument, unprocessable } from "../core/errors.js";
import {
  DOCKER_CONFIG,
  DOCKER_MANIFEST,
  type ManifestKind,
  manifestKindOf,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_MANIFEST,
} from "./media-types.js";
import type { Descriptor, ImageConfig, ImageManifest, Platform } from "./registry-client.js";

/** Manifests, indexes and configs larger than this are refused (real ones are a few KiB). */
export const MAX_METADATA_BYTES = 4 * 1024 * 1024;
const MAX_INDEX_ENTRIES = 1024;
const MAX_LAYERS = 1000;
/** Upper bound for any single blob a descriptor may announce (1 TiB): beyond that it is hostile. */
const MAX_BLOB_SIZE = 2 ** 40;

const MAX_STRING = 1024;

type Json = Record<string, unknown>;

export function parseJsonObject(bytes: Uint8Array, what: string): Json {
  if (bytes.length > MAX_METADATA_BYTES)
    throw unprocessable(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8"));
  } catch (err) {
    // Deeply nested input makes JSON.parse throw RangeError; either way it is not a manifest.
    throw unprocessable(`${what} is not valid JSON`, { cause: err });
  }
  if (!isObject(v)) throw unprocessable(`${what} is not a JSON object`);
  return v;
}

/**
 * The media type of a manifest document: the response Content-Type when it is one we know,
 * otherwise the body's own `mediaType`; both must agree when both are present.
 * Schema1 is recognised (to be refused with a clear message by the caller).
 */
export function manifestMediaType(
  contentType: string | undefined,
  doc: Json,
  what: string,
): { mediaType: string; kind: ManifestKind } {
  const header = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const body = typeof doc["mediaType"] === "string" ? doc["mediaType"] : undefined;
  if (doc["schemaVersion"] === 1 || manifestKindOf(header) === "schema1") {
    throw invalidArgument(
      `${what}: schema1 manifests are not supported (re-push the image with a current client)`,
    );
  }
  const headerKind = manifestKindOf(header);
  if (headerKind !== undefined) {
    if (body !== undefined && body !== header)
      throw unprocessable(
        `${what}: Content-Type ${header} does not match the document's mediaType ${body.slice(0, 100)}`,
      );
    return { mediaType: header, kind: headerKind };
  }
  if (body !== undefined) {
    const k = manifestKindOf(body);
    if (k !== undefined) return { mediaType: body, kind: k };
    throw invalidArgument(`${what}: unsupported manifest media type ${JSON.stringify(body.slice(0, 100))}`);
  }
  // OCI allows omitting mediaType; the shape tells index from manifest.
  if (doc["schemaVersion"] === 2 && Array.isArray(doc["manifests"]))
    return { mediaType: OCI_INDEX, kind: "index" };
  if (doc["schemaVersion"] === 2 && isObject(doc["config"]) && Array.isArray(doc["layers"]))
    return { mediaType: OCI_MANIFEST, kind: "manifest" };
  throw invalidArgument(`${what}: unsupported manifest type ${JSON.stringify(header.slice(0, 100))}`);
}

export function parseIndex(doc: Json, what: string): Descriptor[] {
  if (doc["schemaVersion"] !== 2) throw unprocessable(`${what}: schemaVersion must be 2`);
  const list = doc["manifests"];
  if (!Array.isArray(list)) throw unprocessable(`${what}: manifests must be an array`);
  if (list.length > MAX_INDEX_ENTRIES) throw unprocessable(`${what}: more than ${MAX_INDEX_ENTRIES} entries`);
  return list.map((e, i) => parseDescriptor(e, `${what}: manifests[${i}]`));
}

export function parseImageManifest(doc: Json, mediaType: string, what: string): ImageManifest {
  if (doc["schemaVersion"] !== 2) throw unprocessable(`${what}: schemaVersion must be 2`);
  const config = parseDescriptor(doc["config"], `${what}: config`);
  if (config.size > MAX_METADATA_BYTES)
    throw unprocessable(`${what}: config is larger than ${MAX_METADATA_BYTES} bytes`);
  const wantConfig = mediaType === DOCKER_MANIFEST ? DOCKER_CONFIG : OCI_CONFIG;
  if (
    config.mediaType !== wantConfig &&
    config.mediaType !== OCI_CONFIG &&
    config.mediaType !== DOCKER_CONFIG
  )
    throw invalidArgument(
      `${what} is not a container image (config media type ${JSON.stringify(config.mediaType.slice(0, 100))})`,
    );
  const raw = doc["layers"];
  if (!Array.isArray(raw)) throw unprocessable(`${what}: layers must be an array`);
  if (raw.length > MAX_LAYERS) throw unprocessable(`${what}: more than ${MAX_LAYERS} layers`);
  const layers = raw.map((e, i) => parseDescriptor(e, `${what}: layers[${i}]`));
  return { schemaVersion: 2, mediaType, config, layers };
}

function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw unprocessable(`${what} is not an object`);
  const mediaType = str(v["mediaType"], `${what}.mediaType`);
  const d = str(v["digest"], `${what}.digest`);
  if (d.startsWith("sha512:")) throw invalidArgument(`${what}: sha512 digests are not supported`);
  let digest: Digest;
  try {
    digest = parseDigest(d);
  } catch (err) {
    throw unprocessable(`${what}: invalid digest`, { cause: err });
  }
  const size = v["size"];
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0 || size > MAX_BLOB_SIZE)
    throw unprocessable(`${what}: invalid size`);
  let platform: Platform | undefined;
  if (v["platform"] !== undefined) {
    const p = v["platform"];
    if (!isObject(p)) throw unprocessable(`${what}.platform is not an object`);
    const variant = p["variant"] === undefined ? undefined : str(p["variant"], `${what}.platform.variant`);
    platform = {
      os: str(p["os"], `${what}.platform.os`),
      architecture: str(p["architecture"], `${what}.platform.architecture`),
      variant,
    };
  }
  let annotations: Record<string, string> | undefined;
  if (isObject(v["annotations"])) {
    annotations = {};
    for (const [k, a] of Object.entries(v["annotations"]).slice(0, 256))
      if (typeof a === "string" && a.length <= 4096) annotations[k] = a;
  }
  return { mediaType, digest, size, platform, annotations };
}

export function parseImageConfig(bytes: Uint8Array, what: string): ImageConfig {
  const doc = parseJsonObject(bytes, what);
  const rootfs = doc["rootfs"];
  if (!isObject(rootfs) || rootfs["type"] !== "layers" || !Array.isArray(rootfs["diff_ids"]))
    throw unprocessable(`${what}: rootfs.diff_ids missing`);
  if (rootfs["diff_ids"].length > MAX_LAYERS)
    throw unprocessable(`${what}: more than ${MAX_LAYERS} diff_ids`);
  const diffIds = rootfs["diff_ids"].map((d, i) => {
    const s = str(d, `${what}: rootfs.diff_ids[${i}]`);
    try {
      return parseDigest(s);
    } catch (err) {
      throw unprocessable(`${what}: rootfs.diff_ids[${i}] is not a sha256 digest`, { cause: err });
    }
  });
  const c = isObject(doc["config"]) ? doc["config"] : {};
  return {
    os: typeof doc["os"] === "string" ? doc["os"].slice(0, 64) : "",
    architecture: typeof doc["architecture"] === "string" ? doc["architecture"].slice(0, 64) : "",
    variant: typeof doc["variant"] === "string" ? doc["variant"].slice(0, 64) : undefined,
    diffIds,
    env: strArray(c["Env"]) ?? [],
    cmd: strArray(c["Cmd"]),
    entrypoint: strArray(c["Entrypoint"]),
    workingDir: typeof c["WorkingDir"] === "string" ? c["WorkingDir"] : undefined,
    user: typeof c["User"] === "string" ? c["User"] : undefined,
    raw: doc,
  };
}

/** Config and manifest must describe the same number of layers, or the image is broken. */
export function checkConfigMatchesManifest(manifest: ImageManifest, config: ImageConfig, what: string): void {
  if (config.diffIds.length !== manifest.layers.length)
    throw unprocessable(
      `${what}: manifest has ${manifest.layers.length} layers but config lists ${config.diffIds.length} diff_ids`,
    );
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown, what: string): string {
  if (typeof v !== "string" || v.length === 0 || v.length > MAX_STRING)
    throw unprocessable(`${what} must be a non-empty string`);
  return v;
}

function strArray(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter((x): x is string => typeof x === "string");
}
