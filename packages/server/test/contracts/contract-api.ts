/**
 * `contractApi(t)`: a drop-in for `t.api` that checks EVERY response against the strictest
 * official clients (client-models.ts) by route, plus the transport rules of §1.5 / §5.4:
 *
 * - gzip only when the request asked for it (the CLI never decodes gzip);
 * - a JSON body never carries a Content-Length over 64 KiB (MCP refuses such responses);
 * - errors are `{"error": ..., "status": <http status>}`;
 * - every route the client sequences use is known here: an unknown route is itself a violation,
 *   so nothing passes unchecked.
 *
 * JSON violations throw at once (the caller's test fails on the request that regressed). Event
 * streams are checked as they pass through: frame format, envelope and payload models, ids
 * strictly increasing and above the resume cursor, the spid filter, and that a follow stream
 * ends right after `completion`; a violation errors the stream. All violations are also kept in
 * `violations` for an `assertClean()` at the end.
 *
 * By default requests advertise `Accept-Encoding: identity` like the CLI; `gzip: true` asks for
 * gzip like CONTREE-CLIENT, Go and MCP (fetch decodes it).
 */
import type { TSchema } from "@sinclair/typebox";
import type { TestServer } from "../harness/in-process.js";
import {
  checkModel,
  checkOperation,
  DirectoryList,
  ErrorBody,
  File,
  FileList,
  FileResponse,
  GrepResult,
  Image,
  ImageList,
  InstanceResult,
  OperationList,
  SpawnedSubprocess,
  UUID,
  UuidAnswer,
  WhoAmI,
} from "./client-models.js";
import { SseFrameParser } from "./sse-frames.js";

export const MCP_MAX_FRAMED_JSON = 64 * 1024;

export type ContractInit = RequestInit & { json?: unknown; gzip?: boolean };

export interface ContractApi {
  (path: string, init?: ContractInit): Promise<Response>;
  /** Every violation seen so far (also thrown / streamed as errors). */
  readonly violations: string[];
  /** Route keys ("GET /operations/{id}") and how often each was checked. */
  readonly seen: Map<string, number>;
  assertClean(): void;
}

interface Ctx {
  method: string;
  query: URLSearchParams;
  res: Response;
  /** Parsed JSON body when the response is JSON (undefined for HEAD / empty). */
  json: unknown;
  text: string;
}

type Check = (c: Ctx) => string[];

interface Route {
  method: string | string[];
  pattern: RegExp;
  key: string;
  /** `sse`: the body is checked as a stream; `binary`: body passed through unread. */
  body: "json" | "sse" | "binary" | "text-or-json" | "redirect";
  ok: Check;
}

const U = "[0-9a-fA-F-]{36}";
const model =
  (schema: TSchema): Check =>
  (c) =>
    c.method === "HEAD" ? [] : checkModel(schema, c.json);

const locationOfOperation: Check = (c) => {
  const loc = c.res.headers.get("location") ?? "";
  return /\/v1\/operations\/[0-9a-f-]{36}$/.test(loc)
    ? []
    : [`Location header ${JSON.stringify(loc)} is not …/v1/operations/<uuid>`];
};

const ROUTES: Route[] = [
  { method: "GET", pattern: /^\/whoami$/, key: "GET /whoami", body: "json", ok: model(WhoAmI) },
  { method: "GET", pattern: /^\/images$/, key: "GET /images", body: "json", ok: model(ImageList) },
  {
    method: "POST",
    pattern: /^\/images\/import$/,
    key: "POST /images/import",
    body: "json",
    ok: (c) => [...model(UuidAnswer)(c), ...locationOfOperation(c)],
  },
  {
    method: "PATCH",
    pattern: new RegExp(`^/images/${U}/tag$`),
    key: "PATCH /images/{uuid}/tag",
    body: "json",
    ok: model(Image),
  },
  {
    method: "DELETE",
    pattern: new RegExp(`^/images/${U}/tag$`),
    key: "DELETE /images/{uuid}/tag",
    body: "json",
    ok: (c) => (c.res.status === 204 ? [] : model(Image)(c)),
  },
  { method: "POST", pattern: /^\/files$/, key: "POST /files", body: "json", ok: model(FileResponse) },
  {
    method: ["GET", "HEAD"],
    pattern: /^\/files$/,
    key: "GET|HEAD /files",
    body: "json",
    // legacy lookups (MCP mirror) answer ONE object; the plain list is an object with `files`
    ok: (c) => (c.query.has("sha256") || c.query.has("uuid") ? model(File)(c) : model(FileList)(c)),
  },
  {
    method: ["GET", "HEAD"],
    pattern: /^\/files\/[^/]+$/,
    key: "GET|HEAD /files/{sha256}",
    body: "json",
    ok: model(File),
  },
  {
    method: "POST",
    pattern: /^\/instances$/,
    key: "POST /instances",
    body: "json",
    ok: (c) => [...model(UuidAnswer)(c), ...locationOfOperation(c)],
  },
  {
    method: "GET",
    pattern: /^\/operations$/,
    key: "GET /operations",
    body: "json",
    ok: model(OperationList),
  },
  {
    method: "GET",
    pattern: new RegExp(`^/operations/${U}$`),
    key: "GET /operations/{id}",
    body: "json",
    ok: (c) => checkOperation(c.json),
  },
  {
    method: "DELETE",
    pattern: new RegExp(`^/operations/${U}$`),
    key: "DELETE /operations/{id}",
    body: "json",
    ok: () => [],
  },
  {
    method: "GET",
    pattern: new RegExp(`^/operations/${U}/events$`),
    key: "GET /operations/{id}/events",
    body: "sse",
    ok: () => [],
  },
  {
    method: "POST",
    pattern: new RegExp(`^/operations/${U}/subprocesses$`),
    key: "POST /operations/{id}/subprocesses",
    body: "json",
    ok: model(SpawnedSubprocess),
  },
  {
    method: "GET",
    pattern: new RegExp(`^/operations/${U}/subprocesses/\\d+$`),
    key: "GET /operations/{id}/subprocesses/{spid}",
    body: "json",
    ok: model(InstanceResult),
  },
  {
    method: "DELETE",
    pattern: new RegExp(`^/operations/${U}/subprocesses/\\d+$`),
    key: "DELETE /operations/{id}/subprocesses/{spid}",
    body: "json",
    ok: () => [],
  },
  {
    method: "POST",
    pattern: new RegExp(`^/operations/${U}/subprocesses/\\d+/stdin$`),
    key: "POST /operations/{id}/subprocesses/{spid}/stdin",
    body: "json",
    ok: () => [],
  },
  {
    method: "GET",
    pattern: /^\/inspect\/?$/,
    key: "GET /inspect/?tag=",
    body: "redirect",
    ok: (c) => {
      // Python and Go accept exactly 302 here (not 303/307, not a followed 200)
      if (c.res.status !== 302) return [`tag lookup answered ${c.res.status}, clients need exactly 302`];
      const loc = c.res.headers.get("location") ?? "";
      const last = loc.replace(/\/$/, "").split("/").pop() ?? "";
      return UUID.test(last) ? [] : [`302 Location ${JSON.stringify(loc)} does not end in an image uuid`];
    },
  },
  {
    method: ["GET", "HEAD"],
    pattern: new RegExp(`^/inspect/${U}/?$`),
    key: "GET|HEAD /inspect/{uuid}/",
    body: "json",
    ok: model(Image),
  },
  {
    method: "GET",
    pattern: new RegExp(`^/inspect/${U}/list$`),
    key: "GET /inspect/{uuid}/list",
    body: "text-or-json",
    ok: (c) => {
      const text = c.query.has("text") && c.query.get("text") !== "0";
      const ct = c.res.headers.get("content-type") ?? "";
      if (text) return ct.startsWith("text/plain") ? [] : [`text listing has content-type ${ct}`];
      return model(DirectoryList)(c);
    },
  },
  {
    method: ["GET", "HEAD"],
    pattern: new RegExp(`^/inspect/${U}/download$`),
    key: "GET|HEAD /inspect/{uuid}/download",
    body: "binary",
    ok: (c) =>
      (c.res.headers.get("content-type") ?? "").startsWith("application/octet-stream")
        ? []
        : [`download content-type ${c.res.headers.get("content-type")}`],
  },
  {
    method: ["GET", "HEAD"],
    pattern: new RegExp(`^/inspect/${U}/archive$`),
    key: "GET|HEAD /inspect/{uuid}/archive",
    body: "binary",
    ok: (c) =>
      (c.res.headers.get("content-type") ?? "").startsWith("application/x-tar")
        ? []
        : [`archive content-type ${c.res.headers.get("content-type")}`],
  },
  {
    method: "GET",
    pattern: new RegExp(`^/inspect/${U}/grep$`),
    key: "GET /inspect/{uuid}/grep",
    body: "json",
    ok: model(GrepResult),
  },
];

function routeOf(method: string, path: string): Route | undefined {
  return ROUTES.find(
    (r) =>
      (Array.isArray(r.method) ? r.method.includes(method) : r.method === method) && r.pattern.test(path),
  );
}

const isJsonType = (ct: string | null) => (ct ?? "").startsWith("application/json");

/** Wraps a test server's API with contract checks on every response. */
export function contractApi(t: Pick<TestServer, "url" | "token" | "config">): ContractApi {
  const violations: string[] = [];
  const seen = new Map<string, number>();
  const base = `${t.url}${t.config.pathPrefix}`;

  const call = async (path: string, init: ContractInit = {}): Promise<Response> => {
    const { json, gzip, ...rest } = init;
    const method = (rest.method ?? "GET").toUpperCase();
    const headers = new Headers(rest.headers);
    if (!headers.has("authorization")) headers.set("authorization", `Bearer ${t.token}`);
    if (!headers.has("accept-encoding")) headers.set("accept-encoding", gzip ? "gzip" : "identity");
    if (json !== undefined) headers.set("content-type", "application/json");
    const askedGzip = /gzip/i.test(headers.get("accept-encoding") ?? "");
    const url = new URL(`${base}${path}`);
    const res = await fetch(url, {
      ...rest,
      method,
      headers,
      redirect: "manual",
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });

    const rel = url.pathname.slice(`${t.config.pathPrefix}/v1`.length);
    const route = routeOf(method, rel);
    const where = `${method} ${url.pathname}${url.search} → ${res.status}`;
    const problems: string[] = [];
    const fail = (msgs: string[]) => {
      for (const m of msgs) problems.push(m);
    };

    if (!route) fail(["no contract for this route (add it to contract-api.ts)"]);
    else seen.set(route.key, (seen.get(route.key) ?? 0) + 1);
    if (res.headers.get("content-encoding") && !askedGzip)
      fail([`content-encoding ${res.headers.get("content-encoding")} without Accept-Encoding: gzip`]);

    const ct = res.headers.get("content-type");
    const len = res.headers.get("content-length");
    if (isJsonType(ct) && len !== null && Number(len) > MCP_MAX_FRAMED_JSON) {
      fail([
        `JSON body with Content-Length ${len} > 64 KiB (MCP rejects it; send it chunked or gzip it when asked)`,
      ]);
    }

    const ok = res.status >= 200 && res.status < 400;
    let out: Response = res;
    if (!ok) {
      const text = method === "HEAD" ? "" : await res.text();
      if (method !== "HEAD") {
        if (!isJsonType(ct)) fail([`error response content-type ${ct}`]);
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          fail([`error body is not JSON: ${text.slice(0, 100)}`]);
        }
        fail(checkModel(ErrorBody, body, "$error"));
        if ((body as { status?: unknown } | undefined)?.status !== res.status)
          fail([`error body status ${(body as { status?: unknown })?.status} != HTTP ${res.status}`]);
      }
      out = rebuild(res, method === "HEAD" ? null : text);
    } else if (route?.body === "sse") {
      if (!(ct ?? "").startsWith("text/event-stream")) fail([`events content-type ${ct}`]);
      out = rebuild(
        res,
        res.body ? res.body.pipeThrough(sseChecker(url.searchParams, headers, where, violations)) : null,
      );
    } else if (route?.body === "binary" || route?.body === "redirect" || method === "HEAD") {
      if (route) fail(route.ok({ method, query: url.searchParams, res, json: undefined, text: "" }));
    } else if (route) {
      const raw = res.status === 204 ? "" : await res.text();
      let parsed: unknown;
      if (raw !== "") {
        if (route.body === "json" && !isJsonType(ct)) fail([`content-type ${ct} for a JSON route`]);
        if (isJsonType(ct)) {
          try {
            parsed = JSON.parse(raw);
          } catch {
            fail([`body is not JSON: ${raw.slice(0, 100)}`]);
          }
          if (!askedGzip && Buffer.byteLength(raw) > MCP_MAX_FRAMED_JSON && len !== null)
            fail(["large JSON with Content-Length"]);
        }
      }
      fail(route.ok({ method, query: url.searchParams, res, json: parsed, text: raw }));
      out = rebuild(res, raw);
    }

    if (problems.length > 0) {
      const lines = problems.map((p) => `${where}: ${p}`);
      violations.push(...lines);
      throw new Error(`client contract violated:\n  ${lines.join("\n  ")}`);
    }
    return out;
  };

  const api = call as ContractApi;
  Object.defineProperty(api, "violations", { value: violations });
  Object.defineProperty(api, "seen", { value: seen });
  api.assertClean = () => {
    if (violations.length > 0) throw new Error(`client contract violated:\n  ${violations.join("\n  ")}`);
  };
  return api;
}

function rebuild(res: Response, body: ConstructorParameters<typeof Response>[0]): Response {
  const nullBody = [101, 204, 205, 304].includes(res.status);
  const headers = new Headers(res.headers);
  // the body handed on is already decoded
  headers.delete("content-encoding");
  return new Response(nullBody ? null : body, { status: res.status, statusText: res.statusText, headers });
}

/** Pass-through that checks an event stream frame by frame (see the file comment). */
function sseChecker(
  query: URLSearchParams,
  headers: Headers,
  where: string,
  violations: string[],
): TransformStream<Uint8Array, Uint8Array> {
  const parser = new SseFrameParser();
  const decoder = new TextDecoder();
  const cursorText = headers.get("last-event-id") ?? query.get("since");
  const cursor = cursorText === null || cursorText === "" ? -1 : Number(cursorText);
  const spidText = query.get("spid");
  const spid = spidText === null || spidText === "" ? undefined : Number(spidText);
  const follow = query.has("follow") && query.get("follow") !== "0";
  let last = cursor;
  let lastType: string | undefined;
  let afterCompletion = 0;
  let sawError = false;
  const problems: string[] = [];
  const check = (controller: TransformStreamDefaultController<Uint8Array>, text: string) => {
    for (const item of parser.push(text)) {
      if (item.kind === "error") sawError = true;
      if (item.kind !== "event") continue;
      const e = item.event;
      if (lastType === "completion") afterCompletion++;
      if (e.id <= last)
        problems.push(`event id ${e.id} not above ${last} (ids strictly increase and resume exclusively)`);
      last = Math.max(last, e.id);
      if (spid !== undefined && e.spid !== spid && e.type !== "completion")
        problems.push(`event ${e.id} of spid ${e.spid} in a spid=${spid} stream`);
      lastType = e.type;
    }
    problems.push(...parser.violations.splice(0));
    if (afterCompletion > 0) problems.push("events after completion");
    if (problems.length > 0) {
      const lines = problems.splice(0).map((p) => `${where}: ${p}`);
      violations.push(...lines);
      controller.error(new Error(`client contract violated:\n  ${lines.join("\n  ")}`));
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      check(controller, decoder.decode(chunk, { stream: true }));
    },
    flush(controller) {
      check(controller, decoder.decode());
      if (parser.rest.trim() !== "")
        problems.push(`stream ended inside a frame: ${JSON.stringify(parser.rest.slice(0, 100))}`);
      // a follow stream closes right after completion (clients stop reading there), filtered or not
      if (follow && !sawError && lastType !== "completion")
        problems.push(`follow stream ended after ${lastType ?? "nothing"}, not completion`);
      check(controller, "");
    },
  });
}
