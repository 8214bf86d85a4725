/**
 * The resource figures of a finished process (the `exit` event's `resources`, µs and KiB) as a
 * small inline SVG bar chart: time (wall, user CPU, system CPU) on one scale, peak memory, and
 * block I/O (reads, writes) on another. No charting library: a few rects and texts.
 */
import { formatBytes, formatSeconds } from "./ops-format.js";

export interface ExitFigures {
  durationMs: number;
  userUs: number;
  sysUs: number;
  maxRssKb: number;
  blockIn: number;
  blockOut: number;
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/** The figures of an `exit` event's data, or undefined when it carries none. */
export function exitFigures(data: Record<string, unknown>): ExitFigures | undefined {
  const r = data["resources"];
  if (r === null || typeof r !== "object") return undefined;
  const res = r as Record<string, unknown>;
  return {
    durationMs: num(data["duration_ms"]),
    userUs: num(res["user_time_us"]),
    sysUs: num(res["sys_time_us"]),
    maxRssKb: num(res["max_rss_kb"]),
    blockIn: num(res["block_input_ops"]),
    blockOut: num(res["block_output_ops"]),
  };
}

interface Row {
  label: string;
  value: number;
  text: string;
  cls: string;
}

const W = 560;
const LABEL_W = 110;
const BAR_W = 300;
const ROW_H = 22;
const GROUP_GAP = 10;

export function ResourceChart({ f }: { f: ExitFigures }) {
  const groups: { title: string; rows: Row[] }[] = [
    {
      title: "time",
      rows: [
        {
          label: "wall",
          value: f.durationMs * 1000,
          text: formatSeconds(f.durationMs / 1000),
          cls: "bar-wall",
        },
        { label: "user CPU", value: f.userUs, text: formatSeconds(f.userUs / 1e6), cls: "bar-user" },
        { label: "system CPU", value: f.sysUs, text: formatSeconds(f.sysUs / 1e6), cls: "bar-sys" },
      ],
    },
    {
      title: "memory",
      rows: [{ label: "peak RSS", value: f.maxRssKb, text: formatBytes(f.maxRssKb * 1024), cls: "bar-mem" }],
    },
    {
      title: "block I/O",
      rows: [
        { label: "reads", value: f.blockIn, text: `${f.blockIn} ops`, cls: "bar-in" },
        { label: "writes", value: f.blockOut, text: `${f.blockOut} ops`, cls: "bar-out" },
      ],
    },
  ];
  let y = 0;
  const parts = groups.map((g) => {
    const max = Math.max(1, ...g.rows.map((r) => r.value));
    const rows = g.rows.map((r) => {
      const top = y;
      y += ROW_H;
      const w = r.value <= 0 ? 0 : Math.max(2, (r.value / max) * BAR_W);
      return (
        <g key={r.label}>
          <text x={LABEL_W - 8} y={top + 15} text-anchor="end" class="chart-label">
            {r.label}
          </text>
          <rect x={LABEL_W} y={top + 4} width={w} height={ROW_H - 8} rx={2} class={r.cls} />
          <text x={LABEL_W + w + 6} y={top + 15} class="chart-value">
            {r.text}
          </text>
        </g>
      );
    });
    y += GROUP_GAP;
    return <g key={g.title}>{rows}</g>;
  });
  const summary =
    `wall ${formatSeconds(f.durationMs / 1000)}, user CPU ${formatSeconds(f.userUs / 1e6)}, ` +
    `system CPU ${formatSeconds(f.sysUs / 1e6)}, peak memory ${formatBytes(f.maxRssKb * 1024)}, ` +
    `block reads ${f.blockIn}, block writes ${f.blockOut}`;
  return (
    <figure class="ops-chart">
      <svg
        viewBox={`0 0 ${W} ${y}`}
        width={W}
        height={y}
        role="img"
        aria-label={`Resources: ${summary}`}
        data-testid="resource-chart"
      >
        {parts}
      </svg>
      <figcaption class="muted small">{summary}</figcaption>
    </figure>
  );
}
