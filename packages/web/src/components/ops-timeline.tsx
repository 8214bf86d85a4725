/** The event timeline of an operation: every event but the output chunks, one line each. */
import type { OpEvent } from "./ops-events.js";
import { formatBytes } from "./ops-format.js";

/** Timeline entries kept: output is not in it, so this bounds only odd, chatty operations. */
export const TIMELINE_CAP = 1000;

const s = (v: unknown): string => (typeof v === "string" ? v : typeof v === "number" ? String(v) : "");

export function describeEvent(e: OpEvent): string {
  const d = e.data;
  switch (e.type) {
    case "init":
      return `sandbox started${s(d["hostname"]) === "" ? "" : ` (${s(d["hostname"])})`}`;
    case "network": {
      if (s(d["error"]) !== "") return `network: ${s(d["error"])}`;
      const n = Array.isArray(d["interfaces"]) ? d["interfaces"].length : 0;
      return `network: ${n} interface${n === 1 ? "" : "s"}`;
    }
    case "spawn": {
      const args = Array.isArray(d["args"]) ? d["args"].map(s).join(" ") : "";
      return `spawn pid ${s(d["pid"])}: ${s(d["command"])} ${args}`.trim();
    }
    case "exit": {
      if (d["timed_out"] === true) return "exit: timed out";
      const sig = typeof d["signal"] === "number" && d["signal"] >= 0 ? `, signal ${d["signal"]}` : "";
      return `exit code ${s(d["code"])}${sig} after ${s(d["duration_ms"])} ms`;
    }
    case "truncated":
      return `${s(d["stream"])} truncated: ${s(d["bytes_dropped"])} bytes dropped`;
    case "size_cap":
      return `filesystem cap hit (${formatBytes(Number(d["limit_bytes"]))})`;
    case "shutdown":
      return `shutdown: ${s(d["reason"])}`;
    case "progress":
      if (d["stage"] === "resolved") return `resolved ${s(d["reference"])}: ${s(d["layers"])} layers`;
      if (d["stage"] === "layer")
        return `layer ${s(d["layer"])}/${s(d["layers"])} ${d["reused"] === true ? "reused" : "unpacked"} (${formatBytes(Number(d["size"]))})`;
      return `progress: ${s(d["stage"])}`;
    case "completion":
      return `completion: ${s(d["status"])}${s(d["error"]) === "" ? "" : ` — ${s(d["error"])}`}`;
    default:
      return `${e.type} ${JSON.stringify(d).slice(0, 160)}`;
  }
}

function clock(ts: string): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return d.toLocaleTimeString(undefined, { hour12: false });
}

export function Timeline({ events }: { events: readonly OpEvent[] }) {
  if (events.length === 0) return <p class="muted">No events yet.</p>;
  return (
    <ol class="ops-timeline" aria-label="Event timeline" data-testid="timeline">
      {events.map((e) => (
        <li key={e.id}>
          <span class="mono muted">{clock(e.ts)}</span>
          <span class="mono">
            {e.type}
            {e.spid > 0 ? ` #${e.spid}` : ""}
          </span>
          <span>{describeEvent(e)}</span>
        </li>
      ))}
    </ol>
  );
}
