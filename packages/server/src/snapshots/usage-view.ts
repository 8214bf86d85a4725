/**
 * The wire and CLI form of a usage pass (`GET /v1/admin/usage`, `contree-server usage --json`):
 * snake_case, project names instead of ids, each project's quota beside its charged bytes.
 */
import type { ProjectLimits } from "../config/config.js";
import { effectiveLimits, LIMITS } from "../config/limits.js";
import { isoMicros } from "../core/time.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { UsageReport } from "./usage.js";

export interface ProjectUsageView {
  project: string;
  images: number;
  layers: number;
  files: number;
  exclusive_bytes: number;
  shared_bytes: number;
  charged_bytes: number;
  /** The project's storage_max_bytes; null: no quota. */
  storage_max_bytes: number | null;
  layer_bytes: { exclusive: number; shared: number };
  file_bytes: { exclusive: number; shared: number };
}

export interface UsageView {
  computed_at: string;
  duration_ms: number;
  totals: {
    images: number;
    layers: number;
    layer_bytes: number;
    unreferenced_layers: number;
    unreferenced_layer_bytes: number;
    files: number;
    blobs: number;
    blob_bytes: number;
  };
  projects: ProjectUsageView[];
}

/** Every project appears (one without images or files with zeros); `only` keeps one by name. */
export function usageView(
  r: UsageReport,
  projects: readonly Project[],
  defaults: ProjectLimits,
  only?: string,
): UsageView {
  const byId = new Map(r.projects.map((p) => [p.projectId, p]));
  const rows: ProjectUsageView[] = [];
  for (const p of projects) {
    if (only !== undefined && p.name !== only && p.id !== only) continue;
    const u = byId.get(p.id);
    const limit = effectiveLimits(defaults, p).storage_max_bytes;
    rows.push({
      project: p.name,
      images: u?.images ?? 0,
      layers: u?.layers ?? 0,
      files: u?.files ?? 0,
      exclusive_bytes: u?.exclusiveBytes ?? 0,
      shared_bytes: u?.sharedBytes ?? 0,
      charged_bytes: u?.chargedBytes ?? 0,
      storage_max_bytes: limit >= LIMITS.storage_max_bytes.ceiling ? null : limit,
      layer_bytes: { ...(u?.layerBytes ?? { exclusive: 0, shared: 0 }) },
      file_bytes: { ...(u?.fileBytes ?? { exclusive: 0, shared: 0 }) },
    });
  }
  rows.sort((a, b) => b.charged_bytes - a.charged_bytes || a.project.localeCompare(b.project));
  const t = r.totals;
  return {
    computed_at: isoMicros(r.computedAt),
    duration_ms: r.durationMs,
    totals: {
      images: t.images,
      layers: t.layers,
      layer_bytes: t.layerBytes,
      unreferenced_layers: t.unreferencedLayers,
      unreferenced_layer_bytes: t.unreferencedLayerBytes,
      files: t.files,
      blobs: t.blobs,
      blob_bytes: t.blobBytes,
    },
    projects: rows,
  };
}
