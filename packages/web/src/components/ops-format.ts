/** Small formatting helpers of the operations views. */

export const ACTIVE_STATUSES = ["PENDING", "ASSIGNED", "EXECUTING"] as const;
export const STATUSES = [...ACTIVE_STATUSES, "SUCCESS", "FAILED", "CANCELLED"] as const;
export const KINDS = ["instance", "image_import"] as const;

export function isActive(status: string): boolean {
  return (ACTIVE_STATUSES as readonly string[]).includes(status);
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

/** A server timestamp in the reader's local time (seconds precision). */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === "") return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

export function shortId(uuid: string): string {
  return uuid.slice(0, 8);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
