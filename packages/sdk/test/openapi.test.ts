// The SDK's wire surface against the server's own OpenAPI document, so the two cannot drift apart:
//  - every low-level method (the compiler makes WIRE list all of them) sends exactly the request it
//    claims here, recorded through a stub fetch;
//  - that method and path (and every query parameter sent) exist in GET /v1/openapi.json;
//  - the key object types have the properties the server's response schemas declare, both ways, with
//    the same required/optional split (the compiler makes each name map list exactly the type's keys);
//  - every request body the SDK sends matches the server's request schema all the way down (stdin,
//    files values, resources_limits, networking, registry credentials...): each key the SDK sends is
//    declared there, and each key the server requires the SDK requires too.
// The maps live in wire-surface.ts; the first test type-checks them, since vitest itself does not.

import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContreeApi, ContreeClient } from "../src/index.js";
import { type LiveServer, startLiveServer } from "./live-server.js";
import {
  EXEC_BODY,
  FILE,
  FILE_ITEM,
  type HttpMethod,
  IMAGE,
  IMAGE_DELETED,
  IMPORT_BODY,
  OPERATION,
  type ShapeMap,
  SPAWN_BODY,
  STDIN_BODY,
  SUMMARY,
  TAG_BODY,
  U,
  WHOAMI,
  WIRE,
} from "./wire-surface.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));

interface Schema {
  $ref?: string;
  type?: string;
  title?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: boolean | Schema;
  anyOf?: Schema[];
}
interface OpenApiOperation {
  parameters?: { in: string; name: string }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}
interface OpenApi {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { schemas?: Record<string, Schema> };
}

const template = (p: string) => p.replace(/\{[^}]+\}/g, "{}");

/** Records what the SDK sends; answers just enough for each call to complete. */
function stubClient(requests: { method: string; url: URL }[]): ContreeApi {
  const fetchStub: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const method = init?.method ?? "GET";
    requests.push({ method, url });
    if (url.pathname === "/v1/inspect/" && url.searchParams.has("tag")) {
      return new Response(null, { status: 302, headers: { location: `${U}/` } });
    }
    const body = method === "HEAD" ? null : JSON.stringify({ uuid: U, spid: 2, files: [], images: [] });
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  };
  return new ContreeClient({
    url: "http://sdk-stub.invalid",
    token: "t",
    env: {},
    fetch: fetchStub,
    retry: false,
  }).api;
}

it("the wire maps type-check against the SDK's types (WIRE complete, name maps exact)", async () => {
  const tsc = resolve(HERE, "../../../node_modules/typescript/bin/tsc");
  const r = await promisify(execFile)(process.execPath, [
    tsc,
    "-p",
    resolve(HERE, "wire-surface.tsconfig.json"),
  ]).catch((e: { stdout?: string; code?: number }) => e);
  expect("code" in r ? r.stdout : "").toBe("");
}, 240_000);

describe("SDK wire surface vs the server's OpenAPI document", () => {
  let live: LiveServer;
  let doc: OpenApi;

  beforeAll(async () => {
    live = await startLiveServer({ busybox: false });
    const res = await live.t.api("/v1/openapi.json");
    expect(res.status).toBe(200);
    doc = (await res.json()) as OpenApi;
  }, 240_000);
  afterAll(async () => {
    await live?.close();
  }, 240_000);

  function operation(method: HttpMethod, path: string): OpenApiOperation | undefined {
    const entry = Object.entries(doc.paths).find(([p]) => template(p) === template(path));
    // Fastify answers HEAD for every GET route; the document lists only the GET.
    return entry?.[1][(method === "HEAD" ? "GET" : method).toLowerCase()];
  }

  function deref(s: Schema | undefined): Schema {
    if (!s?.$ref) return s ?? {};
    const name = s.$ref.replace("#/components/schemas/", "");
    return doc.components?.schemas?.[name] ?? {};
  }

  function okSchema(method: HttpMethod, path: string): Schema {
    const op = operation(method, path);
    const res = op?.responses?.["200"] ?? op?.responses?.["201"];
    return deref(res?.content?.["application/json"]?.schema);
  }

  it.each(Object.entries(WIRE))(
    "%s sends the request it claims, and the server documents it",
    async (name, w) => {
      const requests: { method: string; url: URL }[] = [];
      await w.call(stubClient(requests));
      expect(requests, name).toHaveLength(1);
      const [req] = requests;
      expect(req!.method).toBe(w.method);
      const pattern = new RegExp(`^${w.path.replace(/\{[^}]+\}/g, "[^/]+")}$`);
      expect(req!.url.pathname).toMatch(pattern);

      const op = operation(w.method, w.path);
      expect(op, `${w.method} ${w.path} is not in the server's OpenAPI document`).toBeDefined();
      const declared = new Set((op!.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name));
      for (const q of new Set(req!.url.searchParams.keys())) {
        expect(declared.has(q), `${w.method} ${w.path}: query parameter "${q}" is not documented`).toBe(true);
      }
    },
  );

  it("every operation the server documents is one the SDK calls", () => {
    const sdk = new Set(Object.values(WIRE).map((w) => `${w.method} ${template(w.path)}`));
    const missing: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths)) {
      if (path.endsWith("/openapi.json")) continue;
      // Operator endpoints (admin tokens only) are not the tenant SDK's to call.
      if (path.startsWith("/v1/admin/")) continue;
      for (const m of Object.keys(methods)) {
        if (!sdk.has(`${m.toUpperCase()} ${template(path)}`)) missing.push(`${m.toUpperCase()} ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it.each([
    ["File", FILE, "GET", "/v1/files/{sha256}", (s: Schema) => s],
    ["Image", IMAGE, "GET", "/v1/inspect/{image_uuid}/", (s: Schema) => s],
    ["ImageDeleteResponse", IMAGE_DELETED, "DELETE", "/v1/images/{image_uuid}", (s: Schema) => s],
    ["OperationSummary", SUMMARY, "GET", "/v1/operations", (s: Schema) => s.items],
    ["Operation", OPERATION, "GET", "/v1/operations/{operation_id}", (s: Schema) => s],
    [
      "FileItem",
      FILE_ITEM,
      "GET",
      "/v1/inspect/{image_uuid}/list",
      (s: Schema) => s.properties?.["files"]?.items,
    ],
    ["WhoAmIResponse", WHOAMI, "GET", "/v1/whoami", (s: Schema) => s],
  ] as const)(
    "%s: the SDK type and the server's response schema agree",
    (title, presence, method, path, pick) => {
      const schema = deref(pick(okSchema(method, path)));
      const props = Object.keys(schema.properties ?? {});
      expect(props.length, `no response schema for ${method} ${path}`).toBeGreaterThan(0);
      const required = new Set(schema.required ?? []);
      const marks: Record<string, string> = presence;
      for (const [key, mark] of Object.entries(marks)) {
        expect(props, `${title}.${key} is not in the server's schema`).toContain(key);
        if (mark === "required")
          expect(required.has(key), `${title}.${key} is optional on the server`).toBe(true);
      }
      // The other way: whatever the server always sends, the SDK type knows about.
      for (const key of required) expect(Object.keys(marks), `${title} lacks "${key}"`).toContain(key);
    },
  );

  /** The object schemas a schema allows (through $ref, nullable and other unions). */
  function objectsOf(s: Schema | undefined): Schema[] {
    const d = deref(s);
    if (d.anyOf) return d.anyOf.flatMap(objectsOf);
    return d.type === "object" ? [d] : [];
  }

  /** Where the SDK's nested request shape and the server's schema disagree. */
  function requestDrift(where: string, sdk: ShapeMap, server: Schema | undefined): string[] {
    const described = objectsOf(server).filter((o) => o.properties !== undefined);
    if (described.length !== 1) return [`${where}: the server's schema does not describe this object`];
    const o = described[0] as Schema;
    const props = o.properties ?? {};
    const required = new Set(o.required ?? []);
    const problems: string[] = [];
    for (const [key, node] of Object.entries(sdk)) {
      const sub = props[key];
      if (sub === undefined) {
        problems.push(`${where}.${key}: sent by the SDK, not in the server's schema`);
        continue;
      }
      const mark = typeof node === "string" ? node : node.mark;
      if (required.has(key) && mark !== "required")
        problems.push(`${where}.${key}: required by the server, optional in the SDK`);
      if (typeof node === "string") continue;
      if (node.properties) problems.push(...requestDrift(`${where}.${key}`, node.properties, sub));
      if (node.values) {
        const maps = objectsOf(sub).filter((m) => typeof m.additionalProperties === "object");
        if (maps.length !== 1) problems.push(`${where}.${key}: the server does not describe its values`);
        else
          problems.push(
            ...requestDrift(`${where}.${key}[*]`, node.values, maps[0]?.additionalProperties as Schema),
          );
      }
      if (node.items) {
        const items =
          deref(sub)
            .anyOf?.map(deref)
            .find((a) => a.type === "array")?.items ?? deref(sub).items;
        problems.push(...requestDrift(`${where}.${key}[]`, node.items, items));
      }
    }
    for (const key of required)
      if (!(key in sdk)) problems.push(`${where}.${key}: required by the server, unknown to the SDK`);
    return problems;
  }

  it.each([
    ["InstanceSpawnRequest", SPAWN_BODY, "POST", "/v1/instances"],
    ["ImageImportRequest", IMPORT_BODY, "POST", "/v1/images/import"],
    ["ImageTagRequest", TAG_BODY, "PATCH", "/v1/images/{image_uuid}/tag"],
    ["ExecSpec", EXEC_BODY, "POST", "/v1/operations/{operation_id}/subprocesses"],
    ["ClosableStreamRepr", STDIN_BODY, "POST", "/v1/operations/{operation_id}/subprocesses/{spid}/stdin"],
  ] as const)(
    "%s: the SDK's nested request shape and the server's request schema agree",
    (title, shape, method, path) => {
      const body = operation(method, path)?.requestBody?.content?.["application/json"]?.schema;
      expect(body, `${method} ${path} documents no JSON body`).toBeDefined();
      expect(requestDrift(title, shape, body)).toEqual([]);
    },
  );
});
