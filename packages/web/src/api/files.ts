import type { ApiClient } from "./client.js";
import type { FileEntry } from "./types.js";

/** Files larger than this are not shown inline (download them). */
export const VIEW_LIMIT = 512 * 1024;

export async function listDir(client: ApiClient, image: string, path: string): Promise<FileEntry[]> {
  const r = await client.json<{ path: string; files: FileEntry[] }>(`/inspect/${image}/list`, {
    query: { path },
  });
  return r.files;
}

export type FileContent =
  | { kind: "text"; text: string }
  | { kind: "binary" }
  | { kind: "too-large"; size: number };

/** A file's bytes as text when they look like text (no NUL in the first 8 KiB, valid UTF-8). */
export async function readText(
  client: ApiClient,
  image: string,
  path: string,
  size: number,
): Promise<FileContent> {
  if (size > VIEW_LIMIT) return { kind: "too-large", size };
  const res = await client.fetch(`/inspect/${image}/download`, { query: { path } });
  // The size may be unknown (a grep hit): read at most the limit, then stop the download.
  const bytes = await readAtMost(res, VIEW_LIMIT);
  if (bytes === undefined) return { kind: "too-large", size: Math.max(size, VIEW_LIMIT + 1) };
  if (bytes.subarray(0, 8192).includes(0)) return { kind: "binary" };
  try {
    return { kind: "text", text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    return { kind: "binary" };
  }
}

async function readAtMost(res: Response, limit: number): Promise<Uint8Array | undefined> {
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) {
    await res.body?.cancel();
    return undefined;
  }
  const reader = res.body?.getReader();
  if (reader === undefined) return new Uint8Array(await res.arrayBuffer());
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      return undefined;
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Saves a file of the image through the browser (fetched with the token, never a token URL). */
export async function download(client: ApiClient, image: string, path: string): Promise<void> {
  const res = await client.fetch(`/inspect/${image}/download`, { query: { path } });
  const blob = await res.blob();
  const url = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = path.split("/").pop() || "file";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface GrepMatch {
  path: string;
  line_number: number;
  line_text: string;
  type: "match" | "context";
}

export interface GrepResult {
  matches: GrepMatch[];
  truncated: boolean;
  truncated_reason?: string;
}

/** The server's bounded grep (`GET /v1/inspect/{uuid}/grep`), at most `max` matches. */
export function grep(client: ApiClient, image: string, pattern: string, path: string, max = 200) {
  return client.json<GrepResult>(`/inspect/${image}/grep`, {
    query: { pattern, path, max_total: max, case: "smart" },
  });
}

export interface DiffEntry {
  path: string;
  status: "added" | "removed" | "changed";
  changes?: string[];
  old?: { type: string; size: number };
  new?: { type: string; size: number };
}

export interface DiffResult {
  image: string;
  against: string;
  entries: DiffEntry[];
  truncated: boolean;
  truncated_reason?: string;
}

export function diff(client: ApiClient, image: string, against: string | undefined, limit = 2000) {
  return client.json<DiffResult>(`/inspect/${image}/diff`, {
    query: { ...(against === undefined || against === "" ? {} : { against }), limit },
  });
}
