/**
 * Image references, parsed and normalised the way docker, skopeo and the ConTree CLI do:
 *   busybox                      → docker.io/library/busybox:latest
 *   user/app:1                   → docker.io/user/app:1
 *   docker://ghcr.io/o/app@sha…  → ghcr.io/o/app@sha256:…
 *   localhost:5000/app, [::1]:5000/app, 127.0.0.1:5000/app → that registry
 * The grammar is distribution/reference's, checked strictly: everything here ends up in URLs.
 */
import { type Digest, parseDigest } from "../core/digest.js";
import { invalidArgument } from "../core/errors.js";

export interface ImageReference {
  /** Registry as users write it: "docker.io", "ghcr.io", "127.0.0.1:5000", "[::1]:5000". */
  readonly registry: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  readonly repository: string;
  /** Tag; "latest" when neither tag nor digest was given. */
  readonly tag: string | undefined;
  /** Pinned manifest digest; when present it wins over the tag for fetching. */
  readonly digest: Digest | undefined;
}

const DOCKER_HUB = "docker.io";
/** Where docker.io's API actually lives. */
const DOCKER_HUB_API_HOST = "registry-1.docker.io";

const DOCKER_HUB_ALIASES = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);
const MAX_INPUT = 1024;
const MAX_NAME = 255;

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Parse and normalise an image reference; throws AppError invalid_argument with a reason. */
export function parseImageReference(input: string): ImageReference {
  if (typeof input !== "string") throw invalidArgument("image reference must be a string");
  let s = input.trim();
  if (s.length === 0) throw invalidArgument("image reference is empty");
  if (s.length > MAX_INPUT) throw invalidArgument("image reference is too long");
  const bad = describe(input);
  for (const prefix of ["docker://", "oci://"]) {
    if (s.toLowerCase().startsWith(prefix)) {
      s = s.slice(prefix.length);
      break;
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s))
    throw invalidArgument(`unsupported reference scheme in ${bad}: use docker://, oci:// or none`);
  if (/\s/.test(s) || hasControlCharacter(s))
    throw invalidArgument(`invalid image reference ${bad}: contains whitespace or control characters`);

  let digest: Digest | undefined;
  const at = s.indexOf("@");
  if (at >= 0) {
    const d = s.slice(at + 1);
    s = s.slice(0, at);
    if (!d.startsWith("sha256:") && /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:/.test(d))
      throw invalidArgument(`unsupported digest algorithm in ${bad}: only sha256 is supported`);
    if (!/^sha256:[0-9a-f]{64}$/.test(d))
      throw invalidArgument(`invalid digest in image reference ${bad}: expected sha256:<64 lowercase hex>`);
    digest = parseDigest(d);
  }

  // A tag is the part after the last ":" provided no "/" follows it ("host:5000/app" has none).
  let tag: string | undefined;
  const colon = s.lastIndexOf(":");
  if (colon > s.lastIndexOf("/") && colon > s.lastIndexOf("]")) {
    tag = s.slice(colon + 1);
    s = s.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalidArgument(`invalid tag ${describe(tag)} in image reference ${bad}`);
  }

  const parts = s.split("/");
  let registry = DOCKER_HUB;
  const first = parts[0] ?? "";
  if (
    parts.length > 1 &&
    (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("["))
  ) {
    if (!DOMAIN_RE.test(first))
      throw invalidArgument(`invalid registry host ${describe(first)} in image reference ${bad}`);
    const port = /:([0-9]+)$/.exec(first)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
      throw invalidArgument(`invalid registry port in image reference ${bad}`);
    registry = first.toLowerCase();
    parts.shift();
  }
  if (DOCKER_HUB_ALIASES.has(registry)) registry = DOCKER_HUB;
  if (parts.length === 0 || parts.some((p) => p.length === 0))
    throw invalidArgument(`invalid image reference ${bad}: missing repository name`);
  for (const p of parts) {
    if (!PATH_COMPONENT_RE.test(p)) {
      if (PATH_COMPONENT_RE.test(p.toLowerCase()))
        throw invalidArgument(`invalid image reference ${bad}: repository name must be lowercase`);
      throw invalidArgument(`invalid image reference ${bad}: bad repository name component ${describe(p)}`);
    }
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift("library");
  const repository = parts.join("/");
  if (registry.length + 1 + repository.length > MAX_NAME)
    throw invalidArgument(`image name in ${bad} is longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository, tag, digest };
}

/** Canonical string: "docker.io/library/busybox:latest", "host/app@sha256:…" (tag kept if both). */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? "" : `:${ref.tag}`}${ref.digest === undefined ? "" : `@${ref.digest}`}`;
}

/** The short form the ConTree CLI uses as a tag: no registry for docker.io, no "library/". */
export function familiarName(ref: ImageReference): string {
  let name =
    ref.registry === DOCKER_HUB
      ? ref.repository.replace(/^library\//, "")
      : `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) name += `:${ref.tag}`;
  else if (ref.digest !== undefined) name += `@${ref.digest}`;
  return name;
}

/** What goes into /v2/<repo>/manifests/<here>: the digest when pinned, else the tag. */
export function manifestSelector(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** host[:port] to talk HTTP to (docker.io's API lives on registry-1.docker.io). */
export function registryApiHost(ref: Pick<ImageReference, "registry">): string {
  return ref.registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : ref.registry;
}

/** Bare hostname without port or brackets, lowercased ("[::1]:5000" → "::1"). */
export function hostnameOf(registry: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(registry);
  if (m?.[1] !== undefined) return m[1].toLowerCase();
  return registry.replace(/:\d+$/, "").toLowerCase();
}

/** Loopback registries (127.0.0.0/8, ::1, localhost) are the only ones spoken to over plain HTTP by default. */
export function isLoopbackHost(host: string): boolean {
  const h = hostnameOf(host);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (/^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function describe(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}…` : s);
}
