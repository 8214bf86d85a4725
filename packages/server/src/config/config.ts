/** The validated server configuration. Built once at start-up by `loadConfig`. */
/** A kind (`gvisor`, `oci`: the first of its drivers that passes) or one driver by name. */
export type RuntimeChoice = "auto" | "gvisor" | "oci" | "crun" | "runc" | "runsc";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** How runs' writes are capped (runtime/scratch); `auto` picks the best the host offers. */
export type ScratchChoice = "auto" | "project-quota" | "loop" | "plain";

export interface ProjectLimits {
  instance_max_timeout: number;
  instance_max_concurrency: number;
  instance_max_layer_bytes: number;
  images_import_max_concurrency: number;
  images_import_max_timeout: number;
  /** Largest unpacked size of one import (file contents plus a per-entry overhead). */
  images_import_max_unpacked_bytes: number;
  /** Untagged images nothing used for this long are deleted (retention); 0: never. */
  images_ttl_seconds: number;
  /** Uploaded files no run named (and not uploaded again) for this long are deleted; 0: never. */
  files_ttl_seconds: number;
  /** Storage quota (snapshots/usage.ts `chargedBytes`); the ceiling means unlimited. */
  storage_max_bytes: number;
}

export interface Config {
  /** Absolute path of the directory holding the database, blobs and layers. */
  dataDir: string;
  host: string;
  port: number;
  /** Mount prefix in front of `/v1`, "" or "/something" without a trailing slash. */
  pathPrefix: string;
  logLevel: LogLevel;
  /** Largest accepted `POST /v1/files` body. */
  maxUploadBytes: number;
  runtime: RuntimeChoice;
  /** runsc's statx workaround: `auto` (when the self-test needs it), `on`, `off`. */
  runscStatxFix: "auto" | "on" | "off";
  /** Registry hosts (host[:port]) that may be reached over plain HTTP besides loopback ones. */
  insecureRegistries: string[];
  /**
   * Non-public destinations (loopback, private, link-local, CGNAT, metadata, this host) imports
   * may reach: HOST[:PORT], IP[:PORT], [IPv6][:PORT] or CIDR. Empty: public addresses only.
   */
  privateRegistries: string[];
  /** Defaults for every project; a project row may override them. */
  defaultLimits: ProjectLimits;
  /** Outbound networking for runs that do not say (`networking.enabled`). */
  defaultNetworking: boolean;
  /** Per-sandbox cgroup limits. */
  sandbox: { memoryBytes: number; pids: number; cpus: number | undefined };
  /** IPv4 resolvers sandboxes use (and the egress-policy resolver asks); unset = the host's. */
  sandboxDns?: string[];
  /** Private IPv4 ranges runs may reach when their egress policy allows them (labs, tests). */
  egressAllowPrivate?: string[];
  /**
   * Bearer token that may read `/metrics` (besides admin tokens); "public" serves it without
   * authentication. Undefined: admin tokens only.
   */
  metricsToken: string | undefined;
  /** Run scratch: the backend and the largest cap put on a tmpfs when quotas are missing. */
  scratch: { mode: ScratchChoice; tmpfsMaxBytes: number };
  /** Below `minFreeBytes` free on the data filesystem new writes get 507; a reserve is held for results. */
  storage: { minFreeBytes: number; reserveBytes: number };
  /**
   * Garbage collection (snapshots/gc): seconds between background passes (0: none) and how old
   * a dir or blob without a row must be before it counts as an orphan.
   */
  gc: { intervalSeconds: number; graceSeconds: number };
  /**
   * Heavy requests (streams of stored run output, event replays, inspect downloads, archives and
   * greps) in flight per token and per project; past them the answer is 429.
   */
  heavyRequests: { perToken: number; perProject: number; total: number };
  /** Token to create on first start instead of a random one. */
  bootstrapToken: string | undefined;
  /** `CONTREE_SECRETS_KEY` as given (validated); undefined: the data directory's key file. */
  secretsKey?: string | undefined;
  /** Non-public destinations the secrets header proxy may forward to (like `privateRegistries`). */
  secretProxyPrivate?: string[];
  /** Extra CAs (PEM file) the secrets proxy verifies HTTPS destinations against, besides the system's. */
  secretProxyCaFile?: string;
  /** Name → IPv4 the secrets proxy uses instead of resolving (tests' own names; not read from env). */
  secretProxyHosts?: Record<string, string>;
  /**
   * Exposed ports (docs/ports.md): proxied connections open at once per instance (429 beyond),
   * and the signed-URL key (hex or base64, ≥ 32 bytes; unset: generated into the data dir).
   */
  ports: { maxConnectionsPerInstance: number; urlKey: string | undefined };
}
