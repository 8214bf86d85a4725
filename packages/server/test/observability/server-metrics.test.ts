/**
 * The parts of the server metrics no real run drives yet (run stages come from the instance
 * handler's `observeStage` once it is wired), label bounds, and the exposition checker itself
 * (a checker that accepts everything would make the integration test's format check worthless).
 */
import { describe, expect, it } from "vitest";
import { MetricsRegistry } from "../../src/observability/metrics.js";
import { ProcessMetrics } from "../../src/observability/process-metrics.js";
import { ServerMetrics, type ServerMetricsSources } from "../../src/observability/server-metrics.js";
import { parseExposition, sampleValue } from "./exposition.js";

function build(over: Partial<ServerMetricsSources> = {}) {
  const reg = new MetricsRegistry();
  const m = new ServerMetrics(reg, {
    activeOperations: async () => [],
    kindOf: async () => undefined,
    storage: () => ({ freeBytes: 1000, refusingWrites: false }),
    ...over,
  });
  return { reg, m, scrape: async () => parseExposition(await reg.render()) };
}

describe("run stage durations", () => {
  it("observes each stage in its own histogram series", async () => {
    const { m, scrape } = build();
    m.observeRunStage("mount", 0.003);
    m.observeRunStage("mount", 0.2);
    m.observeRunStage("commit", 7);
    const fams = await scrape();
    const name = "contree_run_stage_duration_seconds";
    expect(sampleValue(fams, `${name}_count`, { stage: "mount" })).toBe(2);
    expect(sampleValue(fams, `${name}_sum`, { stage: "mount" })).toBeCloseTo(0.203);
    expect(sampleValue(fams, `${name}_bucket`, { stage: "mount", le: "0.005" })).toBe(1);
    expect(sampleValue(fams, `${name}_bucket`, { stage: "mount", le: "0.25" })).toBe(2);
    expect(sampleValue(fams, `${name}_bucket`, { stage: "commit", le: "5" })).toBe(0);
    expect(sampleValue(fams, `${name}_bucket`, { stage: "commit", le: "10" })).toBe(1);
    expect(sampleValue(fams, `${name}_bucket`, { stage: "commit", le: "+Inf" })).toBe(1);
  });

  it("keeps the stage label bounded and ignores impossible durations", async () => {
    const { m, scrape } = build();
    m.observeRunStage('x"} 1\nevil', 1);
    for (let i = 0; i < 40; i++) m.observeRunStage(`stage_${i}`, 1);
    m.observeRunStage("mount", -1);
    m.observeRunStage("mount", Number.NaN);
    const fams = await scrape();
    const series = fams
      .get("contree_run_stage_duration_seconds")
      ?.samples.filter((s) => s.name.endsWith("_count"));
    expect(series?.length).toBe(24);
    expect(sampleValue(fams, "contree_run_stage_duration_seconds_count", { stage: "other" })).toBe(18);
    expect(sampleValue(fams, "contree_run_stage_duration_seconds_count", { stage: "mount" })).toBe(0);
  });
});

describe("operation events", () => {
  it("a completion of an operation never seen starting asks for its kind; odd values get closed labels", async () => {
    const asked: string[] = [];
    const { m, scrape } = build({
      kindOf: async (id) => {
        asked.push(id);
        return id === "a" ? "image_import" : "something-else";
      },
    });
    m.operationEvent("a", { spid: 0, type: "completion", data: { status: "CANCELLED", duration_ms: 1500 } });
    m.operationEvent("b", { spid: 0, type: "completion", data: { status: "weird", duration_ms: "x" } });
    m.operationEvent("c", { spid: 0, type: "progress", data: { stage: "layer", reused: false, size: -5 } });
    await new Promise((r) => setImmediate(r));
    const fams = await scrape();
    expect(asked).toEqual(["a", "b"]);
    expect(
      sampleValue(fams, "contree_operations_finished_total", { kind: "image_import", status: "CANCELLED" }),
    ).toBe(1);
    expect(
      sampleValue(fams, "contree_operations_finished_total", { kind: "unknown", status: "unknown" }),
    ).toBe(1);
    expect(
      sampleValue(fams, "contree_operation_duration_seconds_sum", {
        kind: "image_import",
        status: "CANCELLED",
      }),
    ).toBe(1.5);
    expect(sampleValue(fams, "contree_image_import_fetched_bytes_total")).toBe(0);
  });

  it("gauges read at scrape time show what the sources say now", async () => {
    let rows = [{ kind: "instance", status: "PENDING", count: 3, oldestCreatedAt: 1_000 }];
    const { scrape } = build({
      activeOperations: async () => rows,
      storage: () => ({ freeBytes: 42, refusingWrites: true }),
      now: () => 11_000,
    });
    let fams = await scrape();
    expect(sampleValue(fams, "contree_operations", { kind: "instance", status: "PENDING" })).toBe(3);
    expect(sampleValue(fams, "contree_operation_oldest_pending_age_seconds", { kind: "instance" })).toBe(10);
    expect(sampleValue(fams, "contree_storage_free_bytes")).toBe(42);
    expect(sampleValue(fams, "contree_storage_refusing_writes")).toBe(1);
    rows = [];
    fams = await scrape();
    expect(sampleValue(fams, "contree_operations", { kind: "instance", status: "PENDING" })).toBe(0);
    expect(sampleValue(fams, "contree_operation_oldest_pending_age_seconds", { kind: "instance" })).toBe(0);
  });
});

describe("the exposition checker", () => {
  const ok = [
    "# HELP a_total A.",
    "# TYPE a_total counter",
    'a_total{k="v"} 1',
    "# HELP h H.",
    "# TYPE h histogram",
    'h_bucket{le="1"} 1',
    'h_bucket{le="+Inf"} 2',
    "h_sum 3",
    "h_count 2",
    "",
  ].join("\n");

  it("accepts a well-formed page", () => {
    expect(sampleValue(parseExposition(ok), "a_total", { k: "v" })).toBe(1);
  });

  it.each([
    [
      "non-cumulative buckets",
      ok.replace('h_bucket{le="+Inf"} 2', 'h_bucket{le="+Inf"} 0').replace("h_count 2", "h_count 0"),
    ],
    ["+Inf not equal to _count", ok.replace("h_count 2", "h_count 3")],
    ["no +Inf bucket", ok.replace('h_bucket{le="+Inf"} 2\n', "")],
    ["no _sum", ok.replace("h_sum 3\n", "")],
    ["a counter without _total", ok.replaceAll("a_total", "a")],
    ["TYPE without HELP", ok.replace("# HELP a_total A.\n", "")],
    ["a sample of another family", ok.replace("a_total{", "b_total{")],
    ["broken label quoting", ok.replace('k="v"', 'k="v')],
    ["no final newline", ok.slice(0, -1)],
  ])("rejects %s", (_what, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});

describe("process metrics", () => {
  it("report the process under the usual names; a blocked event loop shows in the delay", async () => {
    const reg = new MetricsRegistry();
    const pm = new ProcessMetrics(reg);
    try {
      const first = parseExposition(await reg.render());
      expect(sampleValue(first, "process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
      expect(sampleValue(first, "process_open_fds")).toBeGreaterThan(2);
      const start = sampleValue(first, "process_start_time_seconds");
      expect(Math.abs(start - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
      // Let the monitor take samples, then hold the loop for 300 ms.
      await new Promise((r) => setTimeout(r, 50));
      const until = performance.now() + 300;
      while (performance.now() < until) {
        // busy: nothing else runs on this thread meanwhile
      }
      await new Promise((r) => setTimeout(r, 30));
      const second = parseExposition(await reg.render());
      expect(sampleValue(second, "nodejs_eventloop_delay_max_seconds")).toBeGreaterThanOrEqual(0.25);
      // CPU time only grows (how much a busy loop gets depends on the machine's other load).
      expect(sampleValue(second, "process_cpu_seconds_total")).toBeGreaterThan(
        sampleValue(first, "process_cpu_seconds_total"),
      );
      // The delay is per scrape interval: the block is not reported again.
      await new Promise((r) => setTimeout(r, 50));
      const third = parseExposition(await reg.render());
      expect(sampleValue(third, "nodejs_eventloop_delay_max_seconds")).toBeLessThan(0.25);
    } finally {
      pm.close();
    }
  });
});
