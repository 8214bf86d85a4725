import { createHash } from "node:crypto";
import type { HttpRequest, HttpSend } from "./http.js";

/** A ConTree API answer other than success: the tool error shows the server's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Json = Record<string, unknown>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCELLED"]);

/** The calls the tools make, each one ConTree v1 request (docs: contree-api.md "MCP tools"). */
export class ContreeApi {
  constructor(readonly send: HttpSend) {}

  async raw(req: HttpRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await this.send(req, signal);
    if (res.status >= 400) throw errorOf(res.status, res.body);
    return res.body;
  }

  async json<T = Json>(req: HttpRequest, signal?: AbortSignal): Promise<T> {
    const body = await this.raw(req, signal);
    return (body.length === 0 ? {} : JSON.parse(Buffer.from(body).toString("utf8"))) as T;
  }

  /** `tag:NAME` → the tagged image's UUID (through the inspect redirect); a UUID as it is. */
  async resolveImage(image: string): Promise<string> {
    const ref = decodeURIComponent(image);
    if (ref.startsWith("tag:")) {
      const res = await this.send({ method: "GET", path: "/v1/inspect/", query: { tag: ref.slice(4) } });
      if (res.status >= 400) throw errorOf(res.status, res.body);
      const uuid = /([0-9a-f-]{36})\/?$/i.exec(res.header("location") ?? "")?.[1];
      if (!uuid) throw new ApiError(502, `the server did not resolve tag ${JSON.stringify(ref.slice(4))}`);
      return uuid.toLowerCase();
    }
    if (!UUID.test(ref))
      throw new ApiError(
        400,
        `invalid image reference ${JSON.stringify(ref)}: use an image UUID or "tag:NAME" (e.g. "tag:busybox:latest")`,
      );
    return ref.toLowerCase();
  }

  image(uuid: string): Promise<Json> {
    return this.json({ method: "GET", path: `/v1/inspect/${uuid}/` });
  }

  operation(id: string, signal?: AbortSignal): Promise<Json> {
    return this.json({ method: "GET", path: `/v1/operations/${encodeURIComponent(id)}` }, signal);
  }

  async cancel(id: string): Promise<string> {
    const doc = await this.json({ method: "DELETE", path: `/v1/operations/${encodeURIComponent(id)}` });
    return String(doc["status"] ?? "");
  }

  /** Uploads `data` unless the project already holds the same content. */
  async ensureFile(data: Uint8Array): Promise<{ uuid: string; sha256: string }> {
    const sha256 = createHash("sha256").update(data).digest("hex");
    const known = await this.send({ method: "GET", path: "/v1/files", query: { sha256 } });
    if (known.status === 200) return pickFile(JSON.parse(Buffer.from(known.body).toString("utf8")));
    return pickFile(await this.json({ method: "POST", path: "/v1/files", body: data }));
  }

  /**
   * Polls until the operation is terminal. On abort the operation is cancelled (unless
   * `keepOnAbort`: a wait on someone else's operation), then the abort rethrown.
   */
  async waitOperation(
    id: string,
    opts: {
      signal?: AbortSignal;
      deadline?: number;
      onPoll?: () => Promise<void>;
      keepOnAbort?: boolean;
    } = {},
  ): Promise<Json> {
    const { signal } = opts;
    try {
      for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
        signal?.throwIfAborted();
        await opts.onPoll?.();
        const doc = await this.operation(id, signal);
        if (TERMINAL.has(String(doc["status"]))) return doc;
        if (opts.deadline !== undefined && Date.now() >= opts.deadline)
          throw new ApiError(408, `operation ${id} still ${String(doc["status"])} when the wait timed out`);
        await sleep(delay, signal);
      }
    } catch (err) {
      if (signal?.aborted && !opts.keepOnAbort) await this.cancel(id).catch(() => undefined);
      throw err;
    }
  }
}

function pickFile(doc: Json): { uuid: string; sha256: string } {
  return { uuid: String(doc["uuid"]), sha256: String(doc["sha256"]) };
}

function errorOf(status: number, body: Uint8Array): ApiError {
  const text = Buffer.from(body).toString("utf8");
  try {
    const doc = JSON.parse(text) as Json;
    if (typeof doc["error"] === "string") return new ApiError(status, `${doc["error"]} (HTTP ${status})`);
  } catch {
    // not JSON: the text itself (trimmed) is the message
  }
  return new ApiError(status, `${text.slice(0, 500).trim() || "request failed"} (HTTP ${status})`);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The operation document as the official server's `OperationResponse` carries it: these keys,
 * `kind` in lower case, `result` with `image` and `tag`.
 */
export function operationResponse(doc: Json): Json {
  const result = (doc["result"] ?? null) as Json | null;
  return {
    uuid: doc["uuid"] ?? "",
    status: doc["status"],
    kind: String(doc["kind"] ?? "").toLowerCase(),
    error: doc["error"] ?? null,
    metadata: doc["metadata"] ?? null,
    result: result ? { image: result["image"] ?? null, tag: result["tag"] ?? null } : null,
    duration: typeof doc["duration"] === "number" ? doc["duration"] : 0,
  };
}
