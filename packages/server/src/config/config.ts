/** The validated server configuration. Built once at start-up by `loadConfig`. */
export type RuntimeChoice = "auto" | "gvisor" | "oci";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface ProjectLimits {
  instance_max_timeout: number;
  instance_max_concurrency: number;
  instance_max_layer_bytes: number;
  images_import_max_concurrency: number;
  images_import_max_timeout: number;
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
  /** Registry hosts (host[:port]) that may be reached over plain HTTP besides loopback ones. */
  insecureRegistries: string[];
  /** Defaults for every project; a project row may override them. */
  defaultLimits: ProjectLimits;
  /** Outbound networking for runs that do not say (`networking.enabled`). */
  defaultNetworking: boolean;
  /** Per-sandbox cgroup limits. */
  sandbox: { memoryBytes: number; pids: number; cpus: number | undefined };
  /**
   * Heavy requests (streams of stored run output, event replays, inspect downloads, archives and
   * greps) in flight per token and per project; past them the answer is 429.
   */
  heavyRequests: { perToken: number; perProject: number; total: number };
  /** Token to create on first start instead of a random one. */
  bootstrapToken: string | undefined;
}
