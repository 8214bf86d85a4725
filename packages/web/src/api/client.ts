/**
 * The console's one way to the server: every request carries the token as a bearer header (never
 * in a URL), the `Project` header when an admin picked a project, and a ConTree error body
 * (`{"error","status"}`) becomes an ApiError whose message is the server's sentence.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface Credentials {
  token: string;
  /** A project picked by an admin token; undefined: the token's own. */
  project?: string | undefined;
}

type Query = Record<string, string | number | boolean | undefined>;

/** The API root: the console is served at `<prefix>/ui/`, the API at `<prefix>/v1`. */
export function apiBase(pathname: string = location.pathname): string {
  const i = pathname.lastIndexOf("/ui");
  return `${i < 0 ? "" : pathname.slice(0, i)}/v1`;
}

function messageOf(status: number, body: string): string {
  try {
    const j: unknown = JSON.parse(body);
    if (j !== null && typeof j === "object" && "error" in j && typeof j.error === "string") return j.error;
  } catch {
    // not JSON: fall through
  }
  return body.trim() === "" ? `HTTP ${status}` : `HTTP ${status}: ${body.slice(0, 200)}`;
}

export class ApiClient {
  constructor(
    readonly credentials: Credentials,
    private readonly base: string = apiBase(),
  ) {}

  url(path: string, query: Query = {}): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    return `${this.base}${path}${s === "" ? "" : `?${s}`}`;
  }

  headers(extra: Record<string, string> = {}): Headers {
    const h = new Headers(extra);
    h.set("authorization", `Bearer ${this.credentials.token}`);
    if (this.credentials.project !== undefined && this.credentials.project !== "")
      h.set("project", this.credentials.project);
    return h;
  }

  /** The raw response of a successful request; a failed one throws ApiError. */
  async fetch(
    path: string,
    init: { method?: string; query?: Query; json?: unknown; signal?: AbortSignal } = {},
  ) {
    const headers = this.headers(init.json === undefined ? {} : { "content-type": "application/json" });
    let res: Response;
    try {
      res = await fetch(this.url(path, init.query), {
        method: init.method ?? "GET",
        headers,
        ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
        ...(init.signal === undefined ? {} : { signal: init.signal }),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ApiError(0, "the server cannot be reached");
    }
    if (!res.ok) throw new ApiError(res.status, messageOf(res.status, await res.text()));
    return res;
  }

  async json<T>(
    path: string,
    init: { method?: string; query?: Query; json?: unknown; signal?: AbortSignal } = {},
  ) {
    const res = await this.fetch(path, init);
    return (await res.json()) as T;
  }

  async text(path: string, query: Query = {}, signal?: AbortSignal): Promise<string> {
    const res = await this.fetch(path, { query, ...(signal === undefined ? {} : { signal }) });
    return res.text();
  }
}
