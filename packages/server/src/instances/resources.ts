import type { ResourceStats, Rusage } from "../runtime/runtime-driver.js";

/**
 * What one process consumed, in `struct rusage` units (µs, KiB, counts). CPU time and peak
 * memory come from the sandbox's cgroup where it has one (it also counts what the command left
 * running unreaped, and under gVisor the sandbox kernel's own work), else from the rusage the
 * sandbox's init got from wait4; every other figure is the rusage's, and block I/O operations
 * fall back to the cgroup's when there is no rusage. A figure neither source has is 0.
 */
export interface ProcessResources {
  userUs: number;
  sysUs: number;
  maxRssKb: number;
  sharedKb: number;
  unsharedKb: number;
  swaps: number;
  minorFaults: number;
  majorFaults: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
  blockInputOps: number;
  blockOutputOps: number;
  ipcSent: number;
  ipcReceived: number;
  signals: number;
}

/** A cgroup figure when the controller gave one (0 means it measured nothing), else the rusage's. */
const preferCgroup = (cgroup: number | undefined, rusage: number | undefined): number =>
  cgroup !== undefined && cgroup > 0 ? cgroup : (rusage ?? 0);

export function processResources(
  rusage: Rusage | undefined,
  stats: ResourceStats | undefined,
): ProcessResources {
  const r = rusage;
  const us = (ns: number | undefined) => (ns === undefined ? undefined : Math.round(ns / 1000));
  const userUs = preferCgroup(us(stats?.cpuUserNs), r?.utimeUs);
  const sysUs = preferCgroup(us(stats?.cpuSystemNs), r?.stimeUs);
  const kib = (b: number | undefined) => (b === undefined ? undefined : Math.round(b / 1024));
  return {
    userUs,
    sysUs,
    maxRssKb: preferCgroup(kib(stats?.memoryPeakBytes), r?.maxrssKb),
    sharedKb: r?.ixrssKb ?? 0,
    unsharedKb: r === undefined ? 0 : r.idrssKb + r.isrssKb,
    swaps: r?.nswap ?? 0,
    minorFaults: r?.minflt ?? 0,
    majorFaults: r?.majflt ?? 0,
    voluntarySwitches: r?.nvcsw ?? 0,
    involuntarySwitches: r?.nivcsw ?? 0,
    blockInputOps: r?.inblock ?? stats?.ioReadOps ?? 0,
    blockOutputOps: r?.oublock ?? stats?.ioWriteOps ?? 0,
    ipcSent: r?.msgsnd ?? 0,
    ipcReceived: r?.msgrcv ?? 0,
    signals: r?.nsignals ?? 0,
  };
}

/** The operation's consumed_cpu (seconds) and consumed_memory (bytes): the cgroup's totals, else the rusage's. */
export function consumedTotals(m: ProcessResources, stats: ResourceStats | undefined) {
  return {
    cpuSeconds: preferCgroup(stats?.cpuTotalNs, (m.userUs + m.sysUs) * 1000) / 1e9,
    memoryBytes: preferCgroup(stats?.memoryPeakBytes, m.maxRssKb * 1024),
  };
}

/** `metadata.result.resources` (and a subprocess's result): seconds for times, KiB for max_rss. */
export function resultResources(m: ProcessResources, elapsedMs: number) {
  return {
    elapsed_time: elapsedMs / 1000,
    monotonic_time: elapsedMs / 1000,
    user_cpu_time: m.userUs / 1e6,
    system_cpu_time: m.sysUs / 1e6,
    max_rss: m.maxRssKb,
    cost: 0,
    block_input: m.blockInputOps,
    block_output: m.blockOutputOps,
    page_faults: m.minorFaults,
    page_faults_io: m.majorFaults,
    shared_memory: m.sharedKb,
    unshared_memory: m.unsharedKb,
    signals: m.signals,
    swaps: m.swaps,
    voluntary_switches: m.voluntarySwitches,
    involuntary_switches: m.involuntarySwitches,
  };
}

/** The `exit` event's resources (contree-api.md §3.8): exactly `struct rusage`, integers, every field present. */
export function eventResources(m: ProcessResources) {
  return {
    user_time_us: m.userUs,
    sys_time_us: m.sysUs,
    max_rss_kb: m.maxRssKb,
    shared_memory: m.sharedKb,
    unshared_memory: m.unsharedKb,
    swaps: m.swaps,
    minor_faults: m.minorFaults,
    major_faults: m.majorFaults,
    voluntary_ctx_switches: m.voluntarySwitches,
    involuntary_ctx_switches: m.involuntarySwitches,
    block_input_ops: m.blockInputOps,
    block_output_ops: m.blockOutputOps,
    ipc_msgs_sent: m.ipcSent,
    ipc_msgs_received: m.ipcReceived,
    signals_received: m.signals,
  };
}

const SECRET_KEY = /(token|secret|password|api_key|credentials|authorization)$/i;

/** Env for the spawn event: values of secret-looking keys and of the run's secrets are redacted. */
export function redactEnv(
  env: Record<string, string>,
  secrets?: ReadonlySet<string>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, SECRET_KEY.test(k) || secrets?.has(k) ? "<REDACTED>" : v]),
  );
}
