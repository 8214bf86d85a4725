import type { ResourceStats } from "../runtime/runtime-driver.js";

/** `metadata.result.resources` (seconds, bytes) from cgroup accounting and wall time. */
export function resultResources(s: ResourceStats | undefined, elapsedMs: number) {
  return {
    elapsed_time: elapsedMs / 1000,
    monotonic_time: elapsedMs / 1000,
    user_cpu_time: (s?.cpuUserNs ?? 0) / 1e9,
    system_cpu_time: (s?.cpuSystemNs ?? 0) / 1e9,
    max_rss: Math.round((s?.memoryPeakBytes ?? 0) / 1024),
    cost: 0,
    block_input: 0,
    block_output: 0,
    page_faults: 0,
    page_faults_io: 0,
    shared_memory: 0,
    unshared_memory: 0,
    signals: 0,
    swaps: 0,
    voluntary_switches: 0,
    involuntary_switches: 0,
  };
}

/** The `exit` event's resources: integers in µs and KiB, every field present. */
export function eventResources(s: ResourceStats | undefined) {
  return {
    user_time_us: Math.round((s?.cpuUserNs ?? 0) / 1000),
    sys_time_us: Math.round((s?.cpuSystemNs ?? 0) / 1000),
    max_rss_kb: Math.round((s?.memoryPeakBytes ?? 0) / 1024),
    shared_memory: 0,
    unshared_memory: 0,
    swaps: 0,
    minor_faults: 0,
    major_faults: 0,
    voluntary_ctx_switches: 0,
    involuntary_ctx_switches: 0,
    block_input_ops: 0,
    block_output_ops: 0,
    ipc_msgs_sent: 0,
    ipc_msgs_received: 0,
    signals_received: 0,
  };
}

const SECRET_KEY = /(token|secret|password|api_key|credentials|authorization)$/i;

/** Env for the spawn event: values of secret-looking keys are redacted. */
export function redactEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, SECRET_KEY.test(k) ? "<REDACTED>" : v]));
}
