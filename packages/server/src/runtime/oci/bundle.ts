/**
 * One hardened OCI runtime config for crun, runc and runsc. Defaults follow Docker's (a
 * conservative, widely exercised baseline that keeps apt, chown and friends working), minus
 * NET_RAW, plus our own seccomp profile.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { ALLOWED_CHAR_DEVICES } from "../devices.js";
import { type ProcessSpec, type SandboxSpec, TRUST_BUNDLE_PATH } from "../runtime-driver.js";
import { type OciSeccomp, seccompProfile } from "./seccomp.js";

/** Docker's default set without CAP_NET_RAW (raw sockets: spoofing, and a history of kernel bugs). */
const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/sys/devices/virtual/powercap",
  "/sys/firmware",
];

const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

interface OciDeviceRule {
  allow: boolean;
  type?: "c" | "b" | "a";
  major?: number;
  minor?: number;
  access: string;
}

export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: { bounding: string[]; effective: string[]; permitted: string[] };
  rlimits: Array<{ type: string; hard: number; soft: number }>;
  noNewPrivileges: boolean;
}

export interface OciConfig {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    cgroupsPath: string;
    uidMappings?: OciIdMapping[];
    gidMappings?: OciIdMapping[];
    resources: { devices: OciDeviceRule[] };
    namespaces: Array<{ type: string; path?: string }>;
    maskedPaths: string[];
    readonlyPaths: string[];
    rootfsPropagation: string;
    seccomp?: OciSeccomp;
  };
  annotations?: Record<string, string>;
  hooks?: { createRuntime?: OciHook[] };
}

export interface OciHook {
  path: string;
  args: string[];
}

export function ociProcess(p: ProcessSpec): OciProcess {
  return {
    terminal: false,
    user: { uid: p.uid, gid: p.gid, additionalGids: [p.gid] },
    args: p.args,
    env: p.env,
    cwd: p.cwd,
    capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
    // rlimits are inherited from the server: raising them needs capabilities the host may not grant.
    rlimits: [],
    noNewPrivileges: true,
  };
}

export interface BundleOptions {
  cgroupsPath: string;
  /** Join this prepared network namespace; null = no network namespace entry at all (runsc joins via nsenter). */
  netnsPath?: string | null;
  /** Host file bind-mounted read-only at /etc/resolv.conf. */
  resolvConf?: string;
  /** Host file bind-mounted read-only at TRUST_BUNDLE_PATH. */
  trustBundle?: string;
  seccomp?: boolean;
}

export function ociConfig(spec: SandboxSpec, o: BundleOptions): OciConfig {
  const mounts: OciMount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
  ];
  if (o.resolvConf !== undefined) {
    mounts.push({
      destination: "/etc/resolv.conf",
      type: "bind",
      source: o.resolvConf,
      options: ["rbind", "ro", "nosuid", "nodev", "noexec"],
    });
  }
  if (o.trustBundle !== undefined) {
    mounts.push({
      destination: TRUST_BUNDLE_PATH,
      type: "bind",
      source: o.trustBundle,
      options: ["rbind", "ro", "nosuid", "nodev", "noexec"],
    });
  }
  const namespaces: Array<{ type: string; path?: string }> = [
    { type: "pid" },
    { type: "ipc" },
    { type: "uts" },
    { type: "mount" },
    { type: "cgroup" },
  ];
  if (o.netnsPath !== null)
    namespaces.push(o.netnsPath === undefined ? { type: "network" } : { type: "network", path: o.netnsPath });

  const devices: OciDeviceRule[] = [{ allow: false, access: "rwm" }];
  for (const [major, minor] of ALLOWED_CHAR_DEVICES) {
    devices.push(
      minor === undefined
        ? { allow: true, type: "c", major, access: "rwm" }
        : { allow: true, type: "c", major, minor, access: "rwm" },
    );
  }
  const config: OciConfig = {
    ociVersion: "1.0.2",
    process: ociProcess(spec.process),
    root: { path: spec.rootfs, readonly: false },
    hostname: spec.hostname,
    mounts,
    linux: {
      cgroupsPath: o.cgroupsPath,
      // Memory/pids/cpu limits live on the service-owned parent cgroup (cgroups.ts).
      resources: { devices },
      namespaces,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      rootfsPropagation: "private",
    },
  };
  if (spec.users !== undefined) {
    // Container ids 0..size-1 are host ids hostId…: root inside is an unprivileged host uid, and
    // its capabilities reach only what the user namespace owns. The layers are idmapped to the
    // same range (rootfs.ts), so the image's owners read and write as they are on disk.
    const map = [{ containerID: 0, hostID: spec.users.hostId, size: spec.users.size }];
    config.linux.namespaces.unshift({ type: "user" });
    config.linux.uidMappings = map;
    config.linux.gidMappings = map;
  }
  if (o.seccomp !== false) config.linux.seccomp = seccompProfile();
  return config;
}

export async function writeJson(dir: string, name: string, value: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, JSON.stringify(value), { mode: 0o600 });
  return file;
}
