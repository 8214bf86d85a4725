/**
 * How the MCP server reaches a ConTree API: one request in, one buffered response out. Over
 * stdio it is `fetch` to a URL; inside contree-server it is an in-process call that passes
 * through the same authentication and permission checks as a request from outside.
 */
export interface HttpRequest {
  method: "GET" | "POST" | "PATCH" | "DELETE" | "HEAD";
  /** Starts with `/v1/`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: Uint8Array;
}

export interface HttpResponse {
  status: number;
  header(name: string): string | undefined;
  body: Uint8Array;
}

export type HttpSend = (req: HttpRequest, signal?: AbortSignal) => Promise<HttpResponse>;

export function queryString(query: HttpRequest["query"]): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

/** `fetch` against `baseUrl` (scheme, host and any path prefix; `/v1/...` is appended). */
export function fetchSend(baseUrl: string, token: string): HttpSend {
  const base = baseUrl.replace(/\/+$/, "");
  return async (req, signal) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    let body: Uint8Array | string | undefined = req.body;
    if (req.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.json);
    } else if (req.body !== undefined) headers["content-type"] = "application/octet-stream";
    const res = await fetch(`${base}${req.path}${queryString(req.query)}`, {
      method: req.method,
      headers,
      ...(body !== undefined ? { body } : {}),
      redirect: "manual",
      ...(signal ? { signal } : {}),
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, header: (name) => res.headers.get(name) ?? undefined, body: bytes };
  };
}
