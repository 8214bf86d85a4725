/**
 * The isolation layer's contract. A driver turns a mounted root filesystem plus a process
 * description into a running, resource-limited, isolated sandbox. It knows nothing about
 * images, HTTP or the database: the caller mounts the rootfs (rootfs.ts), decides timeouts,
 * caps output, and snapshots the upper dir afterwards.
 */
import type { Duplex, Readable, Writable } from "node:stream";
import type { IdRange } from "../sys/mount.js";
import type { EgressDenial, EgressGuard } from "./egress-guard.js";
import type { EgressPolicy } from "./egress-policy.js";
import type { UserRangeLease } from "./userns.js";

export type { IdRange } from "../sys/mount.js";
export type { UserRangeLease } from "./userns.js";

export type DriverName = "crun" | "runc" | "runsc";
export type DriverKind = "oci" | "gvisor";

export interface ProcessSpec {
  /** argv; args[0] is resolved through PATH from `env` inside the sandbox. */
  args: string[];
  /** "KEY=value" entries. */
  env: string[];
  /** Absolute path inside the sandbox. */
  cwd: string;
  uid: number;
  gid: number;
  /**
   * A pseudo-terminal of the sandbox's own on stdin/stdout/stderr, this size at start. Its stdin
   * then carries frames (terminal-frames.ts: data and resizes), its stdout the terminal's output,
   * its stderr nothing. Needs the sandbox init.
   */
  tty?: TerminalSize;
}

/** Rows and columns of a terminal, 1..MAX_TERMINAL_DIM each. */
export interface TerminalSize {
  rows: number;
  cols: number;
}
export const MAX_TERMINAL_DIM = 1000;

export interface SandboxLimits {
  memoryBytes: number;
  pids: number;
  /** CPUs worth of time per period (1.5 = one and a half cores); unset = unlimited. */
  cpuQuota?: number;
}

export interface SandboxSpec {
  /** [a-z0-9-], 1–64 chars, unique among live sandboxes; names the container, cgroup and netns. */
  id: string;
  /** The mounted merged root directory (absolute). */
  rootfs: string;
  /** An empty directory owned by this sandbox for config.json and friends (absolute). */
  bundleDir: string;
  process: ProcessSpec;
  hostname: string;
  network: "none" | "egress";
  /**
   * With `network: "egress"`: only what the policy allows leaves the sandbox (egress-policy.ts);
   * its DNS goes to a resolver of the server's. `onDenied` hears of each refused destination.
   */
  egressPolicy?: { policy: EgressPolicy; onDenied?: (d: EgressDenial) => void };
  limits: SandboxLimits;
  stdin: "pipe" | "null";
  /**
   * Run in a user namespace that maps ids 0..size-1 to this host range: sandbox root is an
   * unprivileged host uid. The rootfs must have been mounted with its layers idmapped to the
   * same range (mountRootfs `idmap`). Only for drivers whose userRange() gave it.
   */
  users?: IdRange;
  /**
   * The sandbox is killed this many ms after start() even when the server is gone (a watchdog
   * process outside the server's process tree); unset = no limit.
   */
  deadlineMs?: number;
  /**
   * Egress only: called once the sandbox's network exists and before its first process starts
   * (a hook for what must see all of its traffic, like the secrets header proxy's redirect).
   * A throw fails the start.
   */
  onEgress?: (net: { vethHost: string; address: string; gateway: string }) => Promise<void>;
  /**
   * Host file (PEM certificates) bind-mounted read-only at TRUST_BUNDLE_PATH: on /dev's tmpfs,
   * so its mount point is never created in the rootfs and no commit holds it.
   */
  trustBundle?: string;
}

/** Where a sandbox finds `SandboxSpec.trustBundle` (the secrets proxy's CA, docs/secrets.md). */
export const TRUST_BUNDLE_PATH = "/dev/contree/ca-bundle.pem";

/**
 * `struct rusage` of the sandboxed command and the descendants it reaped, as wait4(2) fills it
 * inside the sandbox (times in µs, sizes in KiB, the rest counts). Which fields a platform really
 * measures is documented per driver in docs/resources.md.
 */
export interface Rusage {
  utimeUs: number;
  stimeUs: number;
  maxrssKb: number;
  ixrssKb: number;
  idrssKb: number;
  isrssKb: number;
  minflt: number;
  majflt: number;
  nswap: number;
  inblock: number;
  oublock: number;
  msgsnd: number;
  msgrcv: number;
  nsignals: number;
  nvcsw: number;
  nivcsw: number;
}

export interface ExitStatus {
  exitCode: number;
  /** Terminating signal number, -1 when the process exited normally. */
  signal: number;
  /** True when the kernel OOM-killed anything in the sandbox during its life. */
  oomKilled: boolean;
  /** Absent when the process's rusage could not be collected (it never started, or was killed with its reaper). */
  rusage?: Rusage;
}

export interface ResourceStats {
  cpuUserNs: number;
  cpuSystemNs: number;
  cpuTotalNs: number;
  memoryPeakBytes: number;
  memoryCurrentBytes: number;
  pidsCurrent: number;
  oomKills: number;
  /**
   * Block I/O of the sandbox's cgroup (io.stat / blkio); absent where the controller is not
   * available. On cgroup v1 the write figures are a lower bound, exact only for direct I/O:
   * buffered pages that a kernel flusher writes back are charged to the root cgroup
   * (docs/resources.md).
   */
  ioReadBytes?: number;
  ioWriteBytes?: number;
  ioReadOps?: number;
  ioWriteOps?: number;
}

export interface ProcessHandle {
  /** Host pid of the runtime process that owns this process (not the pid inside the sandbox). */
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  wait(): Promise<Omit<ExitStatus, "oomKilled">>;
  /**
   * Signals the process inside the sandbox (through its init, which passes the signal on; a
   * SIGKILL ends the init and the command with it). Resolves once delivered, for SIGKILL once
   * the process is gone; wait() then reports what the command really did.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface SandboxNetwork {
  mode: "none" | "egress";
  /** Sandbox address and its host-side gateway (egress only). */
  address?: string;
  gateway?: string;
}

export interface Sandbox {
  readonly id: string;
  /** Host pid of the runtime process in the foreground (`<runtime> run`). */
  readonly pid: number;
  /**
   * Plain pipes. Nothing is buffered by the driver: a caller that stops reading makes the
   * sandboxed writer block, so the caller decides how much to keep and must drain or destroy.
   */
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly network: SandboxNetwork;
  /** The sandbox's egress policy in force (null: none), for whatever else forwards its traffic. */
  readonly egressGuard: EgressGuard | null;
  /** Resolves once the main process has exited (independent of whether output was drained). */
  wait(): Promise<ExitStatus>;
  /** Signals every process in the sandbox's cgroup (default SIGKILL, which ends the sandbox). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts another process in the same sandbox; the main process must be running. */
  exec(p: ProcessSpec, o?: { stdin?: "pipe" | "null" }): Promise<ProcessHandle>;
  /** cgroup accounting; still valid after exit, until destroy(). */
  stats(): Promise<ResourceStats>;
  /**
   * A TCP stream to 127.0.0.1:`port` in the sandbox's own network namespace, made from the host
   * (a socket created in that netns; nothing enters the sandbox). null where the sandbox's network
   * stack is not the host kernel's (gVisor), or the native addon is missing: callers then connect
   * from inside (runtime/port-connect.ts). Throws when nothing listens there.
   */
  connectLoopback?(port: number): Promise<Duplex | null>;
  /** Kills what is left and removes container state, cgroups, netns and bundle files. Idempotent. */
  destroy(): Promise<void>;
}

export type SelfTestResult =
  /** `note`: a workaround the driver turned on to pass (doctor and the start-up log say it). */
  | { ok: true; note?: string }
  /**
   * `failedChecks`: the userland probe's failed checks when the sandbox itself ran.
   * `idmapRefused`: the kernel refused the idmapped rootfs mount (no sandbox ran).
   */
  | { ok: false; reason: string; failedChecks?: string[]; idmapRefused?: boolean };

export interface SelfTestOptions {
  /** Scratch directory the self-test may create files in. */
  workDir: string;
  signal?: AbortSignal;
}

export interface RuntimeDriver {
  readonly name: DriverName;
  readonly kind: DriverKind;
  /** Human-readable description of the isolation boundary, for logs and `doctor`. */
  readonly isolation: string;
  version(): Promise<string>;
  selfTest(o: SelfTestOptions): Promise<SelfTestResult>;
  start(spec: SandboxSpec, o?: { signal?: AbortSignal }): Promise<Sandbox>;
  /**
   * A host id range for one sandbox's user namespace, or null when this driver runs sandboxes
   * without one. The caller mounts the rootfs with `idmap: lease.range`, starts the sandbox with
   * `users: lease.range`, and releases the lease after destroy().
   */
  userRange?(): UserRangeLease | null;
}

/** Prefix of every container, netns and veth name this service creates; reclaim keys on it. */
export const NAME_PREFIX = "ctr-";
/** Service-owned cgroup parent: `/<CGROUP_ROOT>/<id>` with the runtime's child `ctr`. */
export const CGROUP_ROOT = "contree";

const ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
export function isValidSandboxId(id: string): boolean {
  return ID_RE.test(id);
}
