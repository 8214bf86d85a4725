/**
 * The server process itself, under the names Prometheus client libraries use (`process_*`,
 * `nodejs_*`), so stock dashboards and alerts apply. Read at scrape time; the event loop delay
 * is sampled continuously (a stalled loop delays every request, event and sandbox timeout).
 */
import { readdirSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { MetricsRegistry } from "./metrics.js";

export class ProcessMetrics {
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });

  constructor(reg: MetricsRegistry) {
    const startSeconds = Math.round((Date.now() - performance.now()) / 1000);
    const cpu = reg.counter("process_cpu_seconds_total", "User and system CPU time of the server process");
    const rss = reg.gauge("process_resident_memory_bytes", "Resident memory of the server process");
    const heap = reg.gauge("nodejs_heap_size_used_bytes", "V8 heap in use");
    const fds = reg.gauge("process_open_fds", "Open file descriptors of the server process");
    const start = reg.gauge("process_start_time_seconds", "Start time of the server process (Unix seconds)");
    const lagMax = reg.gauge(
      "nodejs_eventloop_delay_max_seconds",
      "Longest event loop delay since the previous scrape",
    );
    const lagP99 = reg.gauge(
      "nodejs_eventloop_delay_p99_seconds",
      "99th percentile of the event loop delay since the previous scrape",
    );
    start.set({}, startSeconds);
    this.loop.enable();
    reg.collect(() => {
      const u = process.cpuUsage();
      cpu.set({}, (u.user + u.system) / 1e6);
      const mem = process.memoryUsage();
      rss.set({}, mem.rss);
      heap.set({}, mem.heapUsed);
      fds.set({}, openFds());
      // Nanoseconds; 0 before the first sample.
      lagMax.set({}, this.loop.count > 0 ? this.loop.max / 1e9 : 0);
      lagP99.set({}, this.loop.count > 0 ? this.loop.percentile(99) / 1e9 : 0);
      this.loop.reset();
    });
  }

  close(): void {
    this.loop.disable();
  }
}

function openFds(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}
