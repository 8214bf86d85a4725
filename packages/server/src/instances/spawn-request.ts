import { posix } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import type { ProjectLimits } from "../config/config.js";
import { LIMITS, overLimitMessage } from "../config/limits.js";
import { invalidArgument } from "../core/errors.js";
import { Dict, Maybe, NO_NUL, Open } from "../core/schema.js";
import { decodeStreamInput } from "../core/stream-repr.js";
import { MAX_TERMINAL_DIM } from "../runtime/runtime-driver.js";

export { MAX_TERMINAL_DIM };

import {
  type EgressRules,
  MAX_EGRESS_RULE_LENGTH,
  MAX_EGRESS_RULES,
  mergeEgress,
  parseEgressRule,
  ruleText,
} from "../runtime/egress-policy.js";

const DEFAULT_TIMEOUT = 60;
export const DEFAULT_TRUNCATE = 1024 * 1024;
/** Per-stream capture is held in memory until the run ends, so it is bounded server-side. */
export const MAX_TRUNCATE = 16 * 1024 * 1024;
const DEFAULT_CWD = "/root";
const DEFAULT_HOSTNAME = "linuxkit";
const MAX_ID = 2 ** 32 - 2;
/** Far beyond what a command line or a sandbox's files need; a larger body is hostile. */
const MAX_ARGS = 65_536;
const MAX_ENV = 65_536;
const MAX_FILES = 65_536;

const Bool = (what: string) => Type.Boolean({ "x-error": `${what} must be a boolean` });
const Id = (what: string) =>
  Type.Integer({
    minimum: 0,
    maximum: MAX_ID,
    "x-error": `${what} must be an integer between 0 and ${MAX_ID}`,
  });
const AbsPath = (what: string) =>
  Type.String({
    maxLength: 4096,
    pattern: "^/[^\\u0000]*$",
    "x-error": `${what} must be an absolute path (at most 4096 characters, no NUL)`,
  });
const Command = Type.String({
  minLength: 1,
  pattern: NO_NUL,
  description: "program (exec form) or shell expression (shell: true)",
  "x-error": "command must be a non-empty string without NUL",
});
const Args = Type.Array(Type.String({ pattern: NO_NUL, "x-error": "args must be strings without NUL" }), {
  maxItems: MAX_ARGS,
  "x-error": `args must be an array of at most ${MAX_ARGS} strings`,
});
const Env = Dict(Type.String({ pattern: NO_NUL, "x-error": "{path} must be a string without NUL" }), {
  propertyNames: {
    minLength: 1,
    pattern: "^[^=\\u0000]*$",
    "x-error": 'env names must be non-empty, without "=" or NUL',
  },
  maxProperties: MAX_ENV,
  "x-error": `env must be an object of at most ${MAX_ENV} strings`,
  description: "added on top of the env stored in the image",
});
const Encoding = Type.Union([Type.Literal("ascii"), Type.Literal("base64")], {
  "x-error": '{path} must be "ascii" or "base64"',
});

const TerminalDim = (what: string, dflt: number) =>
  Type.Integer({
    minimum: 1,
    maximum: MAX_TERMINAL_DIM,
    "x-error": `${what} must be an integer between 1 and ${MAX_TERMINAL_DIM}`,
    description: `terminal ${what} at start with tty: true (default ${dflt}; resize through the terminal channel)`,
  });
/** Extension: a pseudo-terminal for the process (docs/terminals.md). */
export const TtySchema = {
  tty: Maybe(
    Type.Boolean({
      "x-error": "tty must be a boolean",
      description:
        "give the process a pseudo-terminal (extension, docs/terminals.md): one output stream, recorded as stdout",
    }),
  ),
  rows: Maybe(TerminalDim("rows", 24)),
  cols: Maybe(TerminalDim("cols", 80)),
};

/** The terminal fields as stored: present only with tty: true. */
export function ttyOf(b: {
  tty?: boolean | null;
  rows?: number | null;
  cols?: number | null;
}): { tty: true; rows: number; cols: number } | Record<string, never> {
  return b.tty === true ? { tty: true, rows: b.rows ?? 24, cols: b.cols ?? 80 } : {};
}

const EgressRuleList = (what: string) =>
  Type.Array(
    Type.String({
      minLength: 1,
      maxLength: MAX_EGRESS_RULE_LENGTH,
      pattern: "^[A-Za-z0-9*._/-]+$",
      "x-error": `{path} must be a domain ("api.example.com", "*.example.com") or an IPv4 address or CIDR of at most ${MAX_EGRESS_RULE_LENGTH} characters`,
    }),
    {
      maxItems: MAX_EGRESS_RULES,
      "x-error": `${what} must be an array of at most ${MAX_EGRESS_RULES} rules`,
      description:
        what === "networking.allow"
          ? "extension: when given, only these destinations (domains, *.suffix domains, IPv4 CIDRs) are reachable (docs/egress.md)"
          : "extension: destinations refused even when allowed (deny beats allow; docs/egress.md)",
      "x-contree-extension": true,
    },
  );

/** ClosableStreamRepr: stdin of a spawn, an exec or a stdin write. */
export const StdinSchema = Open({
  value: Maybe(Type.String({ "x-error": "{path} must be a string" })),
  encoding: Maybe(Encoding),
  close: Maybe(Bool("stdin.close")),
});
type StdinBody = Static<typeof StdinSchema>;

const Mode = Type.Union(
  [
    Type.Integer({ minimum: 0, maximum: 0o7777777 }),
    Type.String({ pattern: "^\\s*(0[oO])?[0-7]{1,7}\\s*$" }),
  ],
  {
    "x-error": '{path} must be an octal mode like "0644"',
    description: '"0644", "0o644", "0o100644" or an integer',
  },
);

const FileSpecSchema = Open(
  {
    uuid: Type.String({
      pattern: "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
      "x-error": "{path} must be a file UUID",
    }),
    uid: Maybe(Id("{path}")),
    gid: Maybe(Id("{path}")),
    mode: Maybe(Mode),
  },
  "an uploaded file written into the sandbox before the command runs",
);

const Files = Dict(FileSpecSchema, {
  propertyNames: AbsPath("files keys"),
  maxProperties: MAX_FILES,
  "x-error": `files must be an object of at most ${MAX_FILES} absolute paths to {uuid, mode, uid, gid}`,
});

/** At most this many secrets per run. */
export const MAX_RUN_SECRETS = 32;

/** A project secret a run may use (extension; secrets/ stores them, docs/secrets.md). */
const SecretUseSchema = Open(
  {
    name: Type.String({
      pattern: "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$",
      "x-error": "{path} must be a secret name (a letter or _, then letters, digits, _ . -; at most 128)",
    }),
    env: Type.String({
      minLength: 1,
      maxLength: 256,
      pattern: "^[^=\\u0000]*$",
      "x-error": '{path} must be an environment variable name (non-empty, without "=" or NUL)',
      description:
        "the variable that holds, inside the sandbox, the real value (no header) or a placeholder the server replaces (header)",
    }),
    header: Maybe(
      Open(
        {
          host: Type.String({
            maxLength: 253,
            pattern: "^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$",
            "x-error": "{path} must be a host name, or *.domain for its subdomains",
          }),
          name: Type.String({
            maxLength: 128,
            pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
            "x-error": "{path} must be an HTTP header name",
          }),
        },
        "header mode: the sandbox sees a placeholder; in HTTP and HTTPS (port 443, docs/secrets.md) requests to `host` the server puts the value in place of the placeholder inside header `name`",
      ),
    ),
  },
  "a project secret the run may use: as an environment variable with the real value (a commit whose writes hold it is refused), or with `header`, substituted by the server in HTTP requests to one host",
);
const Secrets = Type.Array(SecretUseSchema, {
  maxItems: MAX_RUN_SECRETS,
  "x-error": `secrets must be an array of at most ${MAX_RUN_SECRETS} {name, env}`,
  description: "extension: project secrets the run may use (docs/secrets.md)",
});

/** `POST /v1/instances`. */
export const SpawnBodySchema = Open({
  command: Command,
  image: Type.String({
    maxLength: 4096,
    pattern: "^(tag:.+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$",
    description: 'image UUID or "tag:NAME"',
    "x-error": 'image must be an image UUID or "tag:NAME"',
  }),
  args: Maybe(Args),
  shell: Maybe(Bool("shell")),
  env: Maybe(Env),
  preserve_env: Maybe(Bool("preserve_env")),
  cwd: Maybe(Type.Union([Type.Literal(""), AbsPath("cwd")], { "x-error": "cwd must be an absolute path" })),
  hostname: Maybe(
    Type.String({
      pattern: "^([A-Za-z0-9][A-Za-z0-9.-]{0,62})?$",
      "x-error": "hostname must be a valid host name (at most 63 characters)",
    }),
  ),
  uid: Maybe(Id("uid")),
  gid: Maybe(Id("gid")),
  disposable: Maybe(Bool("disposable")),
  stdin: Maybe(
    Type.Union([Type.String(), StdinSchema], {
      "x-error": "stdin must be an object {value, encoding, close}",
    }),
  ),
  timeout: Maybe(
    Type.Integer({
      minimum: 1,
      maximum: LIMITS.instance_max_timeout.ceiling,
      "x-limit": "instance_max_timeout",
      "x-error": "timeout must be a positive integer number of seconds",
      description: `seconds, at most limits.instance_max_timeout (whoami; default ${DEFAULT_TIMEOUT})`,
    }),
  ),
  truncate_output_at: Maybe(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      "x-error": "truncate_output_at must be a non-negative integer",
      description: `bytes captured per stream (default ${DEFAULT_TRUNCATE}; the server keeps at most ${MAX_TRUNCATE})`,
    }),
  ),
  files: Maybe(Files),
  resources_limits: Maybe(
    Open({
      max_layer_bytes: Maybe(
        Type.Integer({
          minimum: 1,
          maximum: LIMITS.instance_max_layer_bytes.ceiling,
          "x-limit": "instance_max_layer_bytes",
          "x-error": "resources_limits.max_layer_bytes must be a positive integer",
          description: "bytes, at most limits.instance_max_layer_bytes (whoami)",
        }),
      ),
    }),
  ),
  networking: Maybe(
    Open({
      enabled: Maybe(Bool("networking.enabled")),
      allow: Maybe(EgressRuleList("networking.allow")),
      deny: Maybe(EgressRuleList("networking.deny")),
    }),
  ),
  ...TtySchema,
  secrets: Maybe(Secrets),
});
export type SpawnBody = Static<typeof SpawnBodySchema>;

export interface FileSpec {
  uuid: string;
  uid: number;
  gid: number;
  /** Always the 4-digit octal string form in metadata (clients need a string). */
  mode: string;
}

export interface SecretUse {
  name: string;
  env: string;
  /** Header mode (lowercase host and header name); absent: env mode. */
  header?: { host: string; name: string };
}

/** The normalised spawn request, stored as the operation's metadata (plus `result` later). */
export interface InstanceMetadata {
  command: string;
  image: string;
  args: string[];
  shell: boolean;
  env: Record<string, string>;
  preserve_env: boolean;
  cwd: string;
  hostname: string;
  uid: number;
  gid: number;
  disposable: boolean;
  stdin: { value: string; encoding: "ascii" | "base64"; close: boolean };
  timeout: number;
  truncate_output_at: number;
  files: Record<string, FileSpec>;
  resources_limits: { max_layer_bytes: number };
  /** `allow`/`deny` (canonical rule texts) only when the request gave them (egress policy). */
  networking: { enabled: boolean; allow?: string[]; deny?: string[] };
  /** Extension: present only with a terminal. */
  tty?: true;
  rows?: number;
  cols?: number;
  /** Names only (values come from the project's store at run time); absent when none. */
  secrets?: SecretUse[];
  [key: string]: unknown;
}

/** `"0644"`, `"0o644"`, `"0o100644"`, `"644"` or an integer (schema-checked): the permission bits. */
function modeString(v: number | string | null | undefined): string {
  const n =
    v === undefined || v === null
      ? 0o644
      : typeof v === "number"
        ? v
        : Number.parseInt(v.trim().replace(/^0[oO]/, ""), 8);
  return (n & 0o7777).toString(8).padStart(4, "0");
}

/** A stdin as stored (defaults filled) and its bytes, decoded once: a spawn stdin may be 16 MiB. */
export function stdinOf(s: StdinBody | string | null | undefined): {
  stdin: InstanceMetadata["stdin"];
  bytes: Buffer;
} {
  if (s === undefined || s === null)
    return { stdin: { value: "", encoding: "ascii", close: true }, bytes: Buffer.alloc(0) };
  const stdin =
    typeof s === "string"
      ? { value: s, encoding: "ascii" as const, close: true }
      : { value: s.value ?? "", encoding: s.encoding ?? "ascii", close: s.close ?? true };
  return { stdin, bytes: decodeStreamInput(stdin.value, stdin.encoding, "stdin") };
}

/**
 * What the schema cannot say: defaults, limits of this project (named as whoami names them),
 * paths normalised, file modes in one spelling.
 */
export function normalizeSpawn(
  body: SpawnBody,
  limits: ProjectLimits,
  defaultNetworking: boolean,
  /** The project's egress rules, which every run with networking gets (and may only narrow). */
  projectEgress?: EgressRules,
): { meta: InstanceMetadata; stdinBytes: Buffer } {
  const timeout = body.timeout ?? Math.min(DEFAULT_TIMEOUT, limits.instance_max_timeout);
  if (timeout > limits.instance_max_timeout)
    throw invalidArgument(overLimitMessage("instance_max_timeout", limits.instance_max_timeout));
  const maxLayer = body.resources_limits?.max_layer_bytes ?? limits.instance_max_layer_bytes;
  if (maxLayer > limits.instance_max_layer_bytes)
    throw invalidArgument(overLimitMessage("instance_max_layer_bytes", limits.instance_max_layer_bytes));

  const files: Record<string, FileSpec> = {};
  for (const [path, spec] of Object.entries(body.files ?? {})) {
    const p = posix.normalize(path);
    if (p === "/") throw invalidArgument("files: cannot write to /");
    // "/a", "//a" and "/./a" are one file: a second one would silently replace the first.
    if (p in files) throw invalidArgument(`files: ${JSON.stringify(p)} is given twice`);
    files[p] = {
      uuid: spec.uuid.toLowerCase(),
      uid: spec.uid ?? 0,
      gid: spec.gid ?? 0,
      mode: modeString(spec.mode),
    };
  }
  const { stdin, bytes } = stdinOf(body.stdin);
  // A terminal stays open for typing until its process ends, unless the request says otherwise.
  if (body.tty === true && (body.stdin === undefined || body.stdin === null)) stdin.close = false;
  const meta: InstanceMetadata = {
    command: body.command,
    image: body.image,
    args: body.args ?? [],
    shell: body.shell ?? false,
    env: body.env ?? {},
    preserve_env: body.preserve_env ?? false,
    cwd: body.cwd ? posix.normalize(body.cwd) : DEFAULT_CWD,
    hostname: body.hostname || DEFAULT_HOSTNAME,
    uid: body.uid ?? 0,
    gid: body.gid ?? 0,
    disposable: body.disposable ?? false,
    stdin,
    timeout,
    truncate_output_at: Math.min(body.truncate_output_at ?? DEFAULT_TRUNCATE, MAX_TRUNCATE),
    files,
    resources_limits: { max_layer_bytes: maxLayer },
    networking: networkingOf(body.networking, defaultNetworking, projectEgress),
    ...ttyOf(body),
  };
  const secrets = secretUses(body.secrets ?? [], meta.env);
  if (secrets.some((s) => s.header !== undefined) && !meta.networking.enabled)
    throw invalidArgument("secrets: header substitution needs networking.enabled");
  if (secrets.length > 0) meta.secrets = secrets;
  return { meta, stdinBytes: bytes };
}

/** One entry per variable and per secret; a variable given a value too is ambiguous. */
function secretUses(
  list: ReadonlyArray<{ name: string; env: string; header?: { host: string; name: string } | null }>,
  env: Record<string, string>,
): SecretUse[] {
  const vars = new Set<string>();
  const names = new Set<string>();
  const out: SecretUse[] = [];
  for (const s of list) {
    if (s.env in env) throw invalidArgument(`secrets: ${JSON.stringify(s.env)} is also given in env`);
    if (vars.has(s.env)) throw invalidArgument(`secrets: ${JSON.stringify(s.env)} is given twice`);
    if (names.has(s.name)) throw invalidArgument(`secrets: secret ${JSON.stringify(s.name)} is named twice`);
    vars.add(s.env);
    names.add(s.name);
    const h = s.header;
    if (h && h.name.toLowerCase() === "host")
      throw invalidArgument("secrets: the Host header cannot carry a secret");
    out.push({
      name: s.name,
      env: s.env,
      ...(h ? { header: { host: h.host.toLowerCase(), name: h.name.toLowerCase() } } : {}),
    });
  }
  return out;
}

/** Rules in canonical form; a bad one is a 400 naming it and where it is. */
function egressList(list: string[] | null | undefined, what: string): string[] | undefined {
  if (list === undefined || list === null) return undefined;
  return list.map((text, i) => {
    const rule = parseEgressRule(text);
    if (typeof rule === "string") throw invalidArgument(`${what}[${i}] ${JSON.stringify(text)} ${rule}`);
    return ruleText(rule);
  });
}

function networkingOf(
  n: SpawnBody["networking"],
  defaultNetworking: boolean,
  project: EgressRules | undefined,
): InstanceMetadata["networking"] {
  const enabled = n?.enabled ?? defaultNetworking;
  const allow = egressList(n?.allow, "networking.allow");
  const deny = egressList(n?.deny, "networking.deny");
  if (!enabled && (allow !== undefined || deny !== undefined))
    throw invalidArgument("networking.allow and networking.deny need networking.enabled");
  if (!enabled) return { enabled };
  const rules = mergeEgress(project, {
    ...(allow === undefined ? {} : { allow }),
    ...(deny === undefined ? {} : { deny }),
  });
  if ("error" in rules) throw invalidArgument(rules.error);
  return { enabled, ...rules };
}
