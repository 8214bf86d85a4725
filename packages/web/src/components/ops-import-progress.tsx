/**
 * Import progress from an import operation's events: `progress` (stage `resolved`: layer count
 * and, from servers that send it, `total_bytes`; stage `layer`: one layer in place with its
 * compressed `size`) and `completion`. A reducer, so the import view and the operation page
 * read the same events the same way.
 */

import type { OpEvent } from "./ops-events.js";
import { formatBytes } from "./ops-format.js";

export interface ImportProgress {
  layers?: number;
  layersDone: number;
  totalBytes?: number;
  bytesDone: number;
  reference?: string;
  status?: string;
  error?: string;
  image?: string;
}

export const NO_PROGRESS: ImportProgress = { layersDone: 0, bytesDone: 0 };

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

export function importProgress(p: ImportProgress, e: OpEvent): ImportProgress {
  if (e.type === "progress") {
    if (e.data["stage"] === "resolved") {
      const layers = num(e.data["layers"]);
      const total = num(e.data["total_bytes"]);
      const reference = str(e.data["reference"]);
      return {
        ...p,
        ...(layers === undefined ? {} : { layers }),
        ...(total === undefined ? {} : { totalBytes: total }),
        ...(reference === undefined ? {} : { reference }),
      };
    }
    if (e.data["stage"] === "layer") {
      const layers = num(e.data["layers"]) ?? p.layers;
      return {
        ...p,
        ...(layers === undefined ? {} : { layers }),
        layersDone: Math.max(p.layersDone, num(e.data["layer"]) ?? p.layersDone + 1),
        bytesDone: p.bytesDone + (num(e.data["size"]) ?? 0),
      };
    }
    return p;
  }
  if (e.type === "completion") {
    const status = str(e.data["status"]);
    const image = str(e.data["result_image_uuid"]);
    const error = str(e.data["error"]);
    return {
      ...p,
      ...(status === undefined ? {} : { status }),
      ...(image === undefined ? {} : { image }),
      ...(error === undefined ? {} : { error }),
    };
  }
  return p;
}

/** Percent done: by bytes when the total is known, else by layers; 100 once it succeeded. */
export function percentOf(p: ImportProgress): number {
  if (p.status === "SUCCESS") return 100;
  if (p.totalBytes !== undefined && p.totalBytes > 0)
    return Math.min(99, Math.floor((p.bytesDone / p.totalBytes) * 100));
  if (p.layers !== undefined && p.layers > 0)
    return Math.min(99, Math.floor((p.layersDone / p.layers) * 100));
  return 0;
}

export function ImportProgressBar({ p }: { p: ImportProgress }) {
  const pct = percentOf(p);
  const layers = p.layers === undefined ? "resolving the manifest…" : `${p.layersDone} of ${p.layers} layers`;
  const bytes =
    p.totalBytes === undefined
      ? `${formatBytes(p.bytesDone)}`
      : `${formatBytes(p.bytesDone)} of ${formatBytes(p.totalBytes)}`;
  return (
    <div class="ops-progress">
      <label for="import-progress">
        Import progress: <strong data-testid="import-percent">{pct}%</strong>
      </label>
      <progress id="import-progress" max={100} value={pct} data-testid="import-progress">
        {pct}%
      </progress>
      <span class="small muted" data-testid="import-figures">
        {layers} · {bytes}
        {p.reference === undefined ? "" : ` · ${p.reference}`}
      </span>
      {p.status !== undefined && p.status !== "SUCCESS" && (
        <p role="alert" class="error">
          Import {p.status.toLowerCase()}
          {p.error === undefined ? "" : `: ${p.error}`}
        </p>
      )}
      {p.image !== undefined && (
        <p class="ok">
          Imported: <a href={`#/images/${p.image}`}>image {p.image}</a>
        </p>
      )}
    </div>
  );
}
