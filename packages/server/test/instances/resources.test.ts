/**
 * The resources of a process in its `exit` event and result (contree-api.md §3.6, §3.8), from a
 * fabricated wait4 rusage and cgroup figures: every field comes from where it is documented to.
 */
import { describe, expect, it } from "vitest";
import {
  consumedTotals,
  eventResources,
  processResources,
  resultResources,
} from "../../src/instances/resources.js";
import type { ResourceStats, Rusage } from "../../src/runtime/runtime-driver.js";
import { EVENT_RESOURCE_FIELDS } from "../contracts/client-models.js";

/** Distinct values, so a field mapped from the wrong source shows. */
const rusage: Rusage = {
  utimeUs: 1_100,
  stimeUs: 2_200,
  maxrssKb: 3_300,
  ixrssKb: 4,
  idrssKb: 5,
  isrssKb: 6,
  minflt: 707,
  majflt: 8,
  nswap: 9,
  inblock: 1_010,
  oublock: 1_111,
  msgsnd: 12,
  msgrcv: 13,
  nsignals: 14,
  nvcsw: 1_515,
  nivcsw: 1_616,
};
const stats: ResourceStats = {
  cpuUserNs: 50_000_000,
  cpuSystemNs: 20_000_000,
  cpuTotalNs: 70_500_000,
  memoryPeakBytes: 8 * 1024 * 1024 + 100,
  memoryCurrentBytes: 1024,
  pidsCurrent: 0,
  oomKills: 0,
  ioReadBytes: 4096 * 3,
  ioWriteBytes: 4096 * 5,
  ioReadOps: 3,
  ioWriteOps: 5,
};

describe("process resources", () => {
  it("the exit event is struct rusage, with CPU time and peak memory from the cgroup when there is one", () => {
    const ev = eventResources(processResources(rusage, stats));
    expect(Object.keys(ev).sort()).toEqual([...EVENT_RESOURCE_FIELDS].sort());
    expect(ev).toEqual({
      user_time_us: 50_000,
      sys_time_us: 20_000,
      max_rss_kb: 8192,
      shared_memory: 4,
      unshared_memory: 11,
      swaps: 9,
      minor_faults: 707,
      major_faults: 8,
      voluntary_ctx_switches: 1_515,
      involuntary_ctx_switches: 1_616,
      block_input_ops: 1_010,
      block_output_ops: 1_111,
      ipc_msgs_sent: 12,
      ipc_msgs_received: 13,
      signals_received: 14,
    });
    for (const v of Object.values(ev)) expect(Number.isInteger(v)).toBe(true);
  });

  it("a subprocess (no cgroup of its own) reports its rusage alone", () => {
    const ev = eventResources(processResources(rusage, undefined));
    expect(ev).toMatchObject({
      user_time_us: 1_100,
      sys_time_us: 2_200,
      max_rss_kb: 3_300,
      minor_faults: 707,
    });
    const r = resultResources(processResources(rusage, undefined), 1500);
    expect(r).toEqual({
      elapsed_time: 1.5,
      monotonic_time: 1.5,
      user_cpu_time: 0.0011,
      system_cpu_time: 0.0022,
      max_rss: 3_300,
      cost: 0,
      block_input: 1_010,
      block_output: 1_111,
      page_faults: 707,
      page_faults_io: 8,
      shared_memory: 4,
      unshared_memory: 11,
      signals: 14,
      swaps: 9,
      voluntary_switches: 1_515,
      involuntary_switches: 1_616,
    });
  });

  it("without a rusage the cgroup's figures stand in (block I/O as operations), the rest is 0", () => {
    const m = processResources(undefined, stats);
    expect(eventResources(m)).toMatchObject({
      user_time_us: 50_000,
      sys_time_us: 20_000,
      max_rss_kb: 8192,
      block_input_ops: 3,
      block_output_ops: 5,
      minor_faults: 0,
      voluntary_ctx_switches: 0,
    });
    expect(resultResources(m, 10)).toMatchObject({
      user_cpu_time: 0.05,
      system_cpu_time: 0.02,
      max_rss: 8192,
    });
  });

  it("a cgroup controller that measured nothing (0, e.g. no cpuacct on cgroup v1) gives way to the rusage", () => {
    const blind: ResourceStats = {
      ...stats,
      cpuUserNs: 0,
      cpuSystemNs: 0,
      cpuTotalNs: 0,
      memoryPeakBytes: 0,
    };
    expect(eventResources(processResources(rusage, blind))).toMatchObject({
      user_time_us: 1_100,
      sys_time_us: 2_200,
      max_rss_kb: 3_300,
    });
    expect(consumedTotals(processResources(rusage, blind), blind)).toEqual({
      cpuSeconds: 0.0033,
      memoryBytes: 3_300 * 1024,
    });
  });

  it("consumed_cpu and consumed_memory are the cgroup's totals (exact bytes) when it has them", () => {
    expect(consumedTotals(processResources(rusage, stats), stats)).toEqual({
      cpuSeconds: 0.0705,
      memoryBytes: 8 * 1024 * 1024 + 100,
    });
  });

  it("with neither source every figure is 0 and elapsed time still counts", () => {
    const m = processResources(undefined, undefined);
    expect(Object.values(eventResources(m)).every((v) => v === 0)).toBe(true);
    expect(resultResources(m, 250)).toMatchObject({ elapsed_time: 0.25, user_cpu_time: 0, page_faults: 0 });
  });
});
