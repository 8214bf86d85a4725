/**
 * A small Prometheus registry (counters, gauges, histograms with labels) rendered in the text
 * exposition format. Hand-written to keep the hot path allocation-free and dependency-free.
 */
type Labels = Readonly<Record<string, string>>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k] as string)}"`).join(",");
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function header(name: string, help: string, type: string): string[] {
  return [`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`];
}

interface Metric {
  render(): string;
}

class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** A total kept elsewhere (e.g. the kernel's CPU time), copied at scrape time. */
  set(labels: Labels, total: number): void {
    this.values.set(labelKey(labels), total);
  }
  render(): string {
    const lines = header(this.name, this.help, "counter");
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return lines.join("\n");
  }
}

class Gauge implements Metric {
  private readonly values = new Map<string, number | (() => number)>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  set(labels: Labels, v: number | (() => number)): void {
    this.values.set(labelKey(labels), v);
  }
  /** Forgets every series (a scrape-time collector sets the ones that exist now). */
  clear(): void {
    this.values.clear();
  }
  render(): string {
    const lines = header(this.name, this.help, "gauge");
    for (const [k, v] of this.values)
      lines.push(`${this.name}${k ? `{${k}}` : ""} ${typeof v === "function" ? v() : v}`);
    return lines.join("\n");
  }
}

class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[] = [
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ],
  ) {}
  observe(labels: Labels, v: number): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++)
      if (v <= (this.buckets[i] as number)) s.counts[i] = (s.counts[i] as number) + 1;
    s.sum += v;
    s.count += 1;
  }
  render(): string {
    const lines = header(this.name, this.help, "histogram");
    for (const [k, s] of this.series) {
      const pre = k ? `${k},` : "";
      this.buckets.forEach((b, i) => {
        lines.push(`${this.name}_bucket{${pre}le="${b}"} ${s.counts[i]}`);
      });
      lines.push(`${this.name}_bucket{${pre}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return lines.join("\n");
  }
}

/** Reads state owned elsewhere (queue rows, free space) into gauges just before a scrape. */
type Collector = () => Promise<void> | void;

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: Collector[] = [];
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.add(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  collect(c: Collector): void {
    this.collectors.push(c);
  }
  async render(): Promise<string> {
    for (const c of this.collectors) await c();
    return `${this.metrics.map((m) => m.render()).join("\n")}\n`;
  }
  private add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
}

/** The metrics every server exposes; subsystems add theirs to the same registry. */
export function createHttpMetrics(reg: MetricsRegistry) {
  return {
    requests: reg.counter("contree_http_requests_total", "HTTP requests by method, route and status"),
    errors: reg.counter("contree_http_errors_total", "HTTP error responses by kind"),
    latency: reg.histogram(
      "contree_http_request_duration_seconds",
      "HTTP request latency by method and route",
    ),
  };
}
export type HttpMetrics = ReturnType<typeof createHttpMetrics>;
