/**
 * The admin API (server extension, admin tokens only; docs/admin-api.md) as the Admin view uses
 * it: projects with limits and usage, tokens, the storage usage pass.
 */
import type { ApiClient } from "../api/client.js";
import type { Whoami } from "../api/types.js";

/** The closed set of token permissions, in whoami's order. */
export const PERMISSIONS = [
  "list",
  "spawn",
  "spawn_disposable",
  "import",
  "cancel",
  "set_image_tag",
  "delete_image",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export interface ProjectUsage {
  images: number;
  layers: number;
  files: number;
  exclusive_bytes: number;
  shared_bytes: number;
  charged_bytes: number;
  storage_max_bytes: number | null;
}

export interface AdminProject {
  id: string;
  name: string;
  created_at: string;
  limits: Record<string, number>;
  usage?: ProjectUsage;
}

export interface AdminToken {
  id: string;
  name: string;
  project: string;
  permissions: string[];
  admin: boolean;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface CreatedToken extends AdminToken {
  token: string;
}

export interface UsageTotals {
  images: number;
  layers: number;
  layer_bytes: number;
  unreferenced_layers: number;
  unreferenced_layer_bytes: number;
  files: number;
  blobs: number;
  blob_bytes: number;
}

export interface NewToken {
  project: string;
  name: string;
  permissions: Permission[];
  admin?: boolean;
  expires_in_seconds?: number;
}

/** whoami's `admin` extension field: older servers do not send it (then: not an admin). */
export function isAdminToken(w: Whoami): boolean {
  return (w as Whoami & { admin?: unknown }).admin === true;
}

export const adminApi = (c: ApiClient) => ({
  projects: async () => (await c.json<{ projects: AdminProject[] }>("/admin/projects")).projects,
  createProject: (name: string) =>
    c.json<AdminProject>("/admin/projects", { method: "POST", json: { name } }),
  tokens: async (project?: string) =>
    (await c.json<{ tokens: AdminToken[] }>("/admin/tokens", { query: { project } })).tokens,
  createToken: (t: NewToken) => c.json<CreatedToken>("/admin/tokens", { method: "POST", json: t }),
  revokeToken: async (id: string) => {
    await c.fetch(`/admin/tokens/${encodeURIComponent(id)}`, { method: "DELETE" });
  },
  usage: () => c.json<{ computed_at: string; totals: UsageTotals }>("/admin/usage"),
});

export type AdminApi = ReturnType<typeof adminApi>;

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** "2026-12-07T14:50:11.123000Z" → "2026-12-07 14:50" (UTC, what the server stores). */
export function when(iso: string | null): string {
  return iso === null ? "—" : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

export function tokenState(t: AdminToken, now = Date.now()): "active" | "revoked" | "expired" {
  if (t.revoked_at !== null) return "revoked";
  if (t.expires_at !== null && Date.parse(t.expires_at) <= now) return "expired";
  return "active";
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
