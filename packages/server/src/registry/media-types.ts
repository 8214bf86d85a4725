/** Manifest, config and layer media types we speak, and what each layer type is compressed with. */
import { invalidArgument } from "../core/errors.js";

export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws";

export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";

/** Sent on every manifest GET: distribution 2.8 answers 404 or converts to schema1 without them. */
export const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");

export type ManifestKind = "index" | "manifest" | "schema1";

export function manifestKindOf(mediaType: string): ManifestKind | undefined {
  switch (mediaType) {
    case OCI_INDEX:
    case DOCKER_LIST:
      return "index";
    case OCI_MANIFEST:
    case DOCKER_MANIFEST:
      return "manifest";
    case DOCKER_SCHEMA1:
    case DOCKER_SCHEMA1_SIGNED:
      return "schema1";
    default:
      return undefined;
  }
}

export type Compression = "gzip" | "zstd" | "none";

const LAYER_COMPRESSION: ReadonlyMap<string, Compression> = new Map([
  ["application/vnd.oci.image.layer.v1.tar", "none"],
  ["application/vnd.oci.image.layer.v1.tar+gzip", "gzip"],
  ["application/vnd.oci.image.layer.v1.tar+zstd", "zstd"],
  // Deprecated in image-spec 1.1 but still found in old Windows-free images; same bytes.
  ["application/vnd.oci.image.layer.nondistributable.v1.tar", "none"],
  ["application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"],
  ["application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", "zstd"],
  ["application/vnd.docker.image.rootfs.diff.tar", "none"],
  ["application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"],
  ["application/vnd.docker.image.rootfs.diff.tar.zstd", "zstd"],
]);

/** Compression of a layer media type; unknown or foreign layers are invalid_argument. */
export function layerCompression(mediaType: string): Compression {
  const c = LAYER_COMPRESSION.get(mediaType);
  if (c !== undefined) return c;
  if (mediaType.startsWith("application/vnd.docker.image.rootfs.foreign."))
    throw invalidArgument("foreign (Windows) layers are not supported");
  throw invalidArgument(`unsupported layer media type ${JSON.stringify(mediaType.slice(0, 200))}`);
}

/** Compression sniffed from a blob's first bytes (archives do not always say what they hold). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd)
    return "zstd";
  return "none";
}
