import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { invalidArgument } from "../core/errors.js";
import { parseAllowEntry } from "../registry/destination-policy.js";
import type { Config, LogLevel, ProjectLimits, RuntimeChoice, ScratchChoice } from "./config.js";
import { LIMITS, type LimitName } from "./limits.js";

/** Values given on the command line; each wins over its environment variable. */
export interface ConfigFlags {
  dataDir?: string | undefined;
  listen?: string | undefined;
  runtime?: string | undefined;
  logLevel?: string | undefined;
  pathPrefix?: string | undefined;
}

const DEFAULT_DATA_DIR = "/var/lib/contree";
const DEFAULT_LISTEN = "127.0.0.1:8080";

export { DEFAULT_LIMITS } from "./limits.js";

/** Heavy requests in flight: enough for a client following or downloading several runs at once. */
export const DEFAULT_HEAVY = { perToken: 8, perProject: 16, total: 64 };

/** Every environment variable the server reads, with its meaning (a reference table; a test checks it is complete). */
export const ENV_VARS: Readonly<Record<string, string>> = {
  CONTREE_DATA_DIR: `data directory (default ${DEFAULT_DATA_DIR})`,
  CONTREE_LISTEN: `HOST:PORT to listen on (default ${DEFAULT_LISTEN})`,
  CONTREE_PATH_PREFIX: 'mount prefix before /v1, e.g. "/sandboxes" (default none)',
  CONTREE_LOG_LEVEL: "fatal|error|warn|info|debug|trace|silent (default info)",
  CONTREE_MAX_UPLOAD_BYTES: "largest accepted file upload in bytes (default 1073741824)",
  CONTREE_RUNTIME: "auto|gvisor|oci|crun|runc|runsc (default auto)",
  CONTREE_RUNSC_STATX_FIX:
    "auto|on|off: run gVisor sandboxes through the statx workaround helper (default auto: when the self-test needs it)",
  CONTREE_INSECURE_REGISTRIES: "comma-separated registry hosts reachable over plain http",
  CONTREE_PRIVATE_REGISTRIES:
    "comma-separated loopback/private/link-local destinations imports may reach: HOST[:PORT], IP[:PORT], CIDR (default: public only)",
  CONTREE_HEAVY_PER_TOKEN: `heavy requests (large outputs, event replays, inspect downloads/archives/greps) in flight per token (default ${DEFAULT_HEAVY.perToken})`,
  CONTREE_HEAVY_PER_PROJECT: `the same, per project (default ${DEFAULT_HEAVY.perProject})`,
  CONTREE_HEAVY_TOTAL: `the same, for the whole server (default ${DEFAULT_HEAVY.total})`,
  CONTREE_BOOTSTRAP_TOKEN: "token created for the default project on first start",
  CONTREE_SECRETS_KEY:
    "key sealing project secrets: 32 bytes as 64 hex digits or base64 (default: <data dir>/secrets.key, made 0600 when the first secret is stored)",
  CONTREE_SECRET_PROXY_PRIVATE:
    "comma-separated loopback/private destinations the secrets header proxy may forward runs' plain HTTP to: HOST[:PORT], IP[:PORT], CIDR (default: public only)",
  CONTREE_SECRET_PROXY_CA_FILE:
    "PEM bundle of extra CAs the secrets header proxy trusts, besides the system's, when it forwards runs' HTTPS (default: none)",
  CONTREE_METRICS_TOKEN:
    'bearer token for GET /metrics besides admin tokens; "public" = no authentication (default: admin tokens only)',
  CONTREE_DEFAULT_NETWORKING: "0|1: outbound networking for runs that do not ask (default 0)",
  CONTREE_SANDBOX_MEMORY_BYTES: "memory limit of each sandbox (default 2147483648)",
  CONTREE_SANDBOX_PIDS: "process limit of each sandbox (default 1024)",
  CONTREE_SANDBOX_CPUS: "CPU limit of each sandbox in cores (default: none)",
  CONTREE_EGRESS_ALLOW_PRIVATE:
    "comma-separated private IPv4 CIDRs that runs whose egress policy allows them may reach (labs, tests; default: none)",
  CONTREE_SANDBOX_DNS:
    "comma-separated IPv4 resolvers for sandboxes with networking, asked by the egress-policy resolver too (default: the host's /etc/resolv.conf, loopback ones left out)",
  CONTREE_INSTANCE_MAX_TIMEOUT: "default per-project limit (seconds)",
  CONTREE_INSTANCE_MAX_CONCURRENCY: "default per-project limit",
  CONTREE_INSTANCE_MAX_LAYER_BYTES: "default per-project limit (bytes)",
  CONTREE_IMAGES_IMPORT_MAX_CONCURRENCY: "default per-project limit",
  CONTREE_IMAGES_IMPORT_MAX_TIMEOUT: "default per-project limit (seconds)",
  CONTREE_IMAGES_IMPORT_MAX_UNPACKED_BYTES:
    "default per-project limit: unpacked size of one import, file bytes + 512 per entry (bytes)",
  CONTREE_IMAGES_TTL_SECONDS:
    "default per-project retention: untagged images unused this long are deleted (default 604800 = 7 days, 0: never)",
  CONTREE_FILES_TTL_SECONDS:
    "default per-project retention: uploaded files no run named this long are deleted (default 86400 = 1 day, 0: never)",
  CONTREE_MIN_FREE_BYTES:
    "below this much free space on the data filesystem new writes get 507 (default 268435456)",
  CONTREE_STORAGE_RESERVE_BYTES:
    "space held back for running operations to record their results on a full disk (default 33554432, at most 1073741824)",
  CONTREE_GC_INTERVAL_SECONDS: "seconds between background garbage collection passes (default 600, 0: none)",
  CONTREE_GC_GRACE_SECONDS:
    "layer dirs, blobs and staging without a row younger than this are left to a later pass (default 600)",
  CONTREE_SCRATCH: "auto|project-quota|loop|plain: how a run's max_layer_bytes is enforced (default auto)",
  CONTREE_SCRATCH_TMPFS_MAX_BYTES:
    "caps up to this use a tmpfs when the data filesystem has no project quotas (default 1073741824, 0: never)",
};

const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const RUNTIMES: readonly RuntimeChoice[] = ["auto", "gvisor", "oci", "crun", "runc", "runsc"];
const SCRATCH_CHOICES: readonly ScratchChoice[] = ["auto", "project-quota", "loop", "plain"];

/**
 * Builds the configuration from defaults < environment < flags and validates all of it,
 * collecting every problem so the operator sees them at once.
 */
export function loadConfig(flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? nonEmpty(env[name]);

  const dataDirRaw = pick(flags.dataDir, "CONTREE_DATA_DIR") ?? DEFAULT_DATA_DIR;
  const dataDir = isAbsolute(dataDirRaw) ? dataDirRaw : resolve(dataDirRaw);

  const listen = pick(flags.listen, "CONTREE_LISTEN") ?? DEFAULT_LISTEN;
  const parsedListen = parseListen(listen);
  if (typeof parsedListen === "string") problems.push(parsedListen);

  const pathPrefix = (pick(flags.pathPrefix, "CONTREE_PATH_PREFIX") ?? "").replace(/\/+$/, "");
  if (pathPrefix !== "" && !/^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~-]+)+$/.test(pathPrefix)) {
    problems.push(`path prefix must look like "/name[/name...]", got ${JSON.stringify(pathPrefix)}`);
  }

  const logLevel = pick(flags.logLevel, "CONTREE_LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    problems.push(`log level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(logLevel)}`);
  }
  const runtime = pick(flags.runtime, "CONTREE_RUNTIME") ?? "auto";
  if (!RUNTIMES.includes(runtime as RuntimeChoice)) {
    problems.push(`runtime must be one of ${RUNTIMES.join(", ")}, got ${JSON.stringify(runtime)}`);
  }

  const runscStatxFix = nonEmpty(env["CONTREE_RUNSC_STATX_FIX"]) ?? "auto";
  if (runscStatxFix !== "auto" && runscStatxFix !== "on" && runscStatxFix !== "off") {
    problems.push(`CONTREE_RUNSC_STATX_FIX must be auto, on or off, got ${JSON.stringify(runscStatxFix)}`);
  }

  const int = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = nonEmpty(env[name]);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) {
      problems.push(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    if (n > max) {
      problems.push(`${name} must be at most ${max}, got ${n}`);
      return fallback;
    }
    return n;
  };

  const maxUploadBytes = int("CONTREE_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024, 0);
  // CONTREE_<NAME> for each limit, between its minimum (1 unless 0 means "never") and its ceiling.
  const defaultLimits = Object.fromEntries(
    (Object.keys(LIMITS) as LimitName[]).map((name) => [
      name,
      int(`CONTREE_${name.toUpperCase()}`, LIMITS[name].default, LIMITS[name].min ?? 1, LIMITS[name].ceiling),
    ]),
  ) as unknown as ProjectLimits;
  const storage = {
    minFreeBytes: int("CONTREE_MIN_FREE_BYTES", 256 * 1024 * 1024, 0),
    reserveBytes: int("CONTREE_STORAGE_RESERVE_BYTES", 32 * 1024 * 1024, 0, 1024 * 1024 * 1024),
  };
  const gc = {
    intervalSeconds: int("CONTREE_GC_INTERVAL_SECONDS", 600, 0),
    graceSeconds: int("CONTREE_GC_GRACE_SECONDS", 600, 0),
  };
  const scratchMode = nonEmpty(env["CONTREE_SCRATCH"]) ?? "auto";
  if (!SCRATCH_CHOICES.includes(scratchMode as ScratchChoice))
    problems.push(
      `CONTREE_SCRATCH must be one of ${SCRATCH_CHOICES.join(", ")}, got ${JSON.stringify(scratchMode)}`,
    );
  const scratch = {
    mode: scratchMode as ScratchChoice,
    tmpfsMaxBytes: int("CONTREE_SCRATCH_TMPFS_MAX_BYTES", 1024 * 1024 * 1024, 0),
  };

  const insecureRegistries = list(env["CONTREE_INSECURE_REGISTRIES"]);
  for (const host of insecureRegistries) {
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(host))
      problems.push(`insecure registry ${JSON.stringify(host)} is not HOST[:PORT]`);
  }

  const privateRegistries = list(env["CONTREE_PRIVATE_REGISTRIES"]);
  for (const entry of privateRegistries) {
    const parsed = parseAllowEntry(entry);
    if (typeof parsed === "string") problems.push(`CONTREE_PRIVATE_REGISTRIES: ${parsed}`);
  }

  const netRaw = nonEmpty(env["CONTREE_DEFAULT_NETWORKING"]) ?? "0";
  if (!["0", "1", "true", "false"].includes(netRaw))
    problems.push(`CONTREE_DEFAULT_NETWORKING must be 0 or 1, got ${JSON.stringify(netRaw)}`);
  const defaultNetworking = netRaw === "1" || netRaw === "true";
  const cpusRaw = nonEmpty(env["CONTREE_SANDBOX_CPUS"]);
  let cpus: number | undefined;
  if (cpusRaw !== undefined) {
    cpus = Number(cpusRaw);
    if (!Number.isFinite(cpus) || cpus <= 0 || cpus > 1024)
      problems.push(`CONTREE_SANDBOX_CPUS must be a positive number, got ${JSON.stringify(cpusRaw)}`);
  }
  const sandboxDns = list(env["CONTREE_SANDBOX_DNS"]);
  for (const ip of sandboxDns)
    if (isIP(ip) !== 4) problems.push(`CONTREE_SANDBOX_DNS: ${JSON.stringify(ip)} is not an IPv4 address`);
  const egressAllowPrivate = list(env["CONTREE_EGRESS_ALLOW_PRIVATE"]);
  for (const c of egressAllowPrivate) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(c);
    const n = m === null ? 0 : (m[1] as string).split(".").reduce((a, b) => a * 256 + Number(b), 0);
    const bits = Number(m?.[2]);
    if (m === null || isIP(m[1] as string) !== 4 || bits > 32 || n % 2 ** (32 - bits) !== 0)
      problems.push(
        `CONTREE_EGRESS_ALLOW_PRIVATE: ${JSON.stringify(c)} is not an IPv4 CIDR without host bits`,
      );
  }
  const sandbox = {
    memoryBytes: int("CONTREE_SANDBOX_MEMORY_BYTES", 2 * 1024 * 1024 * 1024, 16 * 1024 * 1024),
    pids: int("CONTREE_SANDBOX_PIDS", 1024, 16),
    cpus,
  };

  const heavyRequests = {
    perToken: int("CONTREE_HEAVY_PER_TOKEN", DEFAULT_HEAVY.perToken, 1),
    perProject: int("CONTREE_HEAVY_PER_PROJECT", DEFAULT_HEAVY.perProject, 1),
    total: int("CONTREE_HEAVY_TOTAL", DEFAULT_HEAVY.total, 1),
  };

  const bootstrapToken = nonEmpty(env["CONTREE_BOOTSTRAP_TOKEN"]);
  if (bootstrapToken !== undefined && !/^[\x21-\x7e]{8,512}$/.test(bootstrapToken)) {
    problems.push("CONTREE_BOOTSTRAP_TOKEN must be 8..512 printable ASCII characters without spaces");
  }

  const portUrlKey = nonEmpty(env["CONTREE_PORT_URL_KEY"]);
  if (
    portUrlKey !== undefined &&
    !/^[0-9a-fA-F]{64,}$/.test(portUrlKey) &&
    !(/^[A-Za-z0-9+/]{43,}={0,2}$/.test(portUrlKey) && Buffer.from(portUrlKey, "base64").length >= 32)
  )
    problems.push("CONTREE_PORT_URL_KEY must be at least 32 bytes in hex or base64");
  const ports = {
    maxConnectionsPerInstance: int("CONTREE_PORT_MAX_CONNECTIONS", 64, 1),
    urlKey: portUrlKey,
  };

  const metricsToken = nonEmpty(env["CONTREE_METRICS_TOKEN"]);
  if (metricsToken !== undefined && metricsToken !== "public" && !/^[\x21-\x7e]{16,512}$/.test(metricsToken))
    problems.push(
      'CONTREE_METRICS_TOKEN must be "public" or 16..512 printable ASCII characters without spaces',
    );

  const secretProxyPrivate = list(env["CONTREE_SECRET_PROXY_PRIVATE"]);
  for (const entry of secretProxyPrivate) {
    const parsed = parseAllowEntry(entry);
    if (typeof parsed === "string") problems.push(`CONTREE_SECRET_PROXY_PRIVATE: ${parsed}`);
  }
  const secretProxyCaFile = nonEmpty(env["CONTREE_SECRET_PROXY_CA_FILE"]);
  if (secretProxyCaFile !== undefined && !existsSync(secretProxyCaFile))
    problems.push("CONTREE_SECRET_PROXY_CA_FILE: no such file");
  const secretsKey = nonEmpty(env["CONTREE_SECRETS_KEY"]);
  if (secretsKey !== undefined && !/^\s*([0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)\s*$/.test(secretsKey))
    problems.push("CONTREE_SECRETS_KEY must be 32 bytes written as 64 hex digits or in base64");

  if (problems.length > 0) {
    throw invalidArgument(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  const { host, port } = parsedListen as { host: string; port: number };
  return {
    dataDir,
    host,
    port,
    pathPrefix,
    logLevel: logLevel as LogLevel,
    maxUploadBytes,
    runtime: runtime as RuntimeChoice,
    runscStatxFix: runscStatxFix as Config["runscStatxFix"],
    insecureRegistries,
    privateRegistries,
    defaultLimits,
    defaultNetworking,
    sandbox,
    ...(sandboxDns.length === 0 ? {} : { sandboxDns }),
    ...(egressAllowPrivate.length === 0 ? {} : { egressAllowPrivate }),
    metricsToken,
    scratch,
    storage,
    gc,
    heavyRequests,
    bootstrapToken,
    secretsKey,
    secretProxyPrivate,
    ...(secretProxyCaFile === undefined ? {} : { secretProxyCaFile }),
    ports,
  };
}

function list(v: string | undefined): string[] {
  return (nonEmpty(v) ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === "" ? undefined : v;
}

/** "HOST:PORT", "[::1]:PORT" or ":PORT"; returns a message when invalid. */
export function parseListen(s: string): { host: string; port: number } | string {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(s);
  if (!m) return `listen address must be HOST:PORT, got ${JSON.stringify(s)}`;
  const port = Number(m[3]);
  if (port > 65535) return `listen port must be 0..65535, got ${port}`;
  const host = m[1] ?? (m[2] === "" ? "0.0.0.0" : (m[2] as string));
  return { host, port };
}
