// The SDK's wire surface against the server's own OpenAPI document, so the two cannot drift apart:
//  - every low-level method (the compiler makes WIRE list all of them) sends exactly the request it
//    claims here, recorded through a stub fetch;
//  - that method and path (and every query parameter sent) exist in GET /v1/openapi.json;
//  - the key object types have the properties the server's response schemas declare, both ways, with
//    the same required/optional split (the compiler makes each name map list exactly the type's keys);
//  - every request body the SDK sends matches the server's request schema all the way down (stdin,
//    files values, resources_limits, networking, registry credentials...): each key the SDK sends is
//    declared there, and each key the server requires the SDK requires too;
//  - the nested response shapes (each operation kind's metadata, InstanceResult with `running`) agree
//    with the SDK's types both ways, and real documents of a run, an import and a subprocess carry no
//    key the SDK types lack, at any depth.
// The maps live in wire-surface.ts; the first test type-checks them, since vitest itself does not.

import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContreeApi, ContreeClient, terminalPath } from "../src/index.js";
import { type LiveServer, startLiveServer } from "./live-server.js";
import {
  ADMIN_PROJECT,
  ADMIN_TOKEN,
  CREATED_TOKEN,
  EXEC_BODY,
  FILE,
  FILE_ITEM,
  type HttpMethod,
  IMAGE,
  IMAGE_DELETED,
  IMAGE_DIFF,
  IMPORT_BODY,
  IMPORT_METADATA,
  INSTANCE_METADATA,
  INSTANCE_RESULT,
  OPERATION,
  type ShapeMap,
  SPAWN_BODY,
  STDIN_BODY,
  SUMMARY,
  TAG_BODY,
  TOKEN_BODY,
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
    live = await startLiveServer();
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

  it("the terminal WebSocket paths the SDK opens are the ones the server documents", () => {
    for (const spid of [1, 2]) {
      const path = `/v1${terminalPath(U, spid)}`.replace(U, "{id}").replace(/\/2\//, "/{spid}/");
      expect(operation("GET", path), `terminal of spid ${spid}: ${path}`).toBeDefined();
    }
  });

  it("every operation the server documents is one the SDK calls", () => {
    const sdk = new Set(Object.values(WIRE).map((w) => `${w.method} ${template(w.path)}`));
    const missing: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths)) {
      if (path.endsWith("/openapi.json")) continue;
      // Operator endpoints (admin tokens only) are not the tenant SDK's to call, except the
      // projects and tokens of `client.admin`.
      if (path.startsWith("/v1/admin/") && !/^\/v1\/admin\/(projects|tokens)\b/.test(path)) continue;
      // WebSocket endpoints: terminal() opens them (no fetch); their paths are checked below.
      if (path.endsWith("/terminal")) continue;
      // A sandbox's own HTTP server behind the port proxy: the SDK hands out URLs to it
      // (RunOperation.portUrl, signedPortUrl), the calls are the app's.
      if (/\/ports\/\{port\}(\/\{\*\})?$/.test(path) || path.startsWith("/v1/p/")) continue;
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
    [
      "AdminProject",
      ADMIN_PROJECT,
      "GET",
      "/v1/admin/projects",
      (s: Schema) => s.properties?.["projects"]?.items,
    ],
    ["AdminToken", ADMIN_TOKEN, "GET", "/v1/admin/tokens", (s: Schema) => s.properties?.["tokens"]?.items],
    ["CreatedToken", CREATED_TOKEN, "POST", "/v1/admin/tokens", (s: Schema) => s],
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
    ["TokenCreateRequest", TOKEN_BODY, "POST", "/v1/admin/tokens"],
  ] as const)(
    "%s: the SDK's nested request shape and the server's request schema agree",
    (title, shape, method, path) => {
      const body = operation(method, path)?.requestBody?.content?.["application/json"]?.schema;
      expect(body, `${method} ${path} documents no JSON body`).toBeDefined();
      expect(requestDrift(title, shape, body)).toEqual([]);
    },
  );

  /** Where the SDK's nested response type and the server's response schema disagree (both ways). */
  function responseDrift(where: string, sdk: ShapeMap, server: Schema | undefined): string[] {
    const described = objectsOf(server).filter((o) => o.properties !== undefined);
    if (described.length !== 1) return [`${where}: the server's schema does not describe this object`];
    const o = described[0] as Schema;
    const props = o.properties ?? {};
    const required = new Set(o.required ?? []);
    const problems: string[] = [];
    for (const key of Object.keys(props))
      if (!(key in sdk)) problems.push(`${where}.${key}: sent by the server, not in the SDK's type`);
    for (const [key, node] of Object.entries(sdk)) {
      const sub = props[key];
      if (sub === undefined) {
        problems.push(`${where}.${key}: in the SDK's type, not in the server's schema`);
        continue;
      }
      const mark = typeof node === "string" ? node : node.mark;
      if (mark === "required" && !required.has(key))
        problems.push(`${where}.${key}: required in the SDK, optional on the server`);
      if (typeof node === "string") continue;
      if (node.properties) problems.push(...responseDrift(`${where}.${key}`, node.properties, sub));
      if (node.values) {
        const maps = objectsOf(sub).filter((m) => typeof m.additionalProperties === "object");
        if (maps.length !== 1) problems.push(`${where}.${key}: the server does not describe its values`);
        else
          problems.push(
            ...responseDrift(`${where}.${key}[*]`, node.values, maps[0]?.additionalProperties as Schema),
          );
      }
    }
    return problems;
  }

  it("Operation.metadata of each kind and a process's InstanceResult agree with the SDK's types, nested", () => {
    const op = deref(okSchema("GET", "/v1/operations/{operation_id}"));
    const kinds = objectsOf(op.properties?.["metadata"]);
    const byTitle = (t: string) => kinds.filter((k) => k.title === t);
    expect(kinds.map((k) => k.title).sort()).toEqual(["ImageImportMetadata", "OperationInstanceMetadata"]);
    expect(
      responseDrift("instance metadata", INSTANCE_METADATA, byTitle("OperationInstanceMetadata")[0]),
    ).toEqual([]);
    expect(responseDrift("import metadata", IMPORT_METADATA, byTitle("ImageImportMetadata")[0])).toEqual([]);
    const sub = okSchema("GET", "/v1/operations/{operation_id}/subprocesses/{spid}");
    expect(responseDrift("InstanceResult", INSTANCE_RESULT, sub)).toEqual([]);
  });

  it("ImageDiff (extension) agrees with the server's schema, its entries too", async () => {
    const schema = okSchema("GET", "/v1/inspect/{image_uuid}/diff");
    const { entries, ...top } = IMAGE_DIFF;
    const entryShape = (entries as { items: ShapeMap }).items;
    expect(responseDrift("ImageDiff", { ...top, entries: "required" }, schema)).toEqual([]);
    expect(responseDrift("ImageDiff.entries[*]", entryShape, schema.properties?.["entries"]?.items)).toEqual(
      [],
    );
    // and a real document: a run's diff against its parent, with text
    const client = live.client();
    const op = await client.images.handle(live.busybox).run("echo hi > /etc/motd && rm /etc/group");
    const result = await op.wait();
    const doc = await (await live.t.api(`/v1/inspect/${result.image?.uuid}/diff?text=1`)).json();
    expect(documentDrift("diff", IMAGE_DIFF, doc)).toEqual([]);
  }, 120_000);

  /** Where a real document has keys the SDK's type lacks, or lacks keys the type requires. */
  function documentDrift(where: string, sdk: ShapeMap, value: unknown): string[] {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      return [`${where}: not an object`];
    const doc = value as Record<string, unknown>;
    const problems: string[] = [];
    for (const key of Object.keys(doc))
      if (!(key in sdk)) problems.push(`${where}.${key}: sent by the server, not in the SDK's type`);
    for (const [key, node] of Object.entries(sdk)) {
      const mark = typeof node === "string" ? node : node.mark;
      if (mark === "required" && !(key in doc)) problems.push(`${where}.${key}: required in the SDK, absent`);
      const v = doc[key];
      if (typeof node === "string" || v === null || v === undefined) continue;
      if (node.properties) problems.push(...documentDrift(`${where}.${key}`, node.properties, v));
      if (node.values) {
        for (const [k, x] of Object.entries(v as Record<string, unknown>))
          problems.push(...documentDrift(`${where}.${key}[${k}]`, node.values, x));
      }
      if (node.items) {
        for (const [i, x] of (v as unknown[]).entries())
          problems.push(...documentDrift(`${where}.${key}[${i}]`, node.items, x));
      }
    }
    return problems;
  }

  it("real documents (a run with every option, an import, a subprocess running and ended) hold no key the SDK types lack", async () => {
    const client = live.client();
    const base = client.images.handle(live.busybox);
    const op = await base.run("cat; echo out; echo err >&2", {
      env: { A: "1" },
      cwd: "/tmp",
      hostname: "h",
      stdin: "in",
      files: { "/etc/x": "x" },
      maxLayerBytes: 1 << 20,
      networking: false,
      timeoutSec: 60,
    });
    await op.wait();
    const get = async (path: string) => (await (await live.t.api(path)).json()) as Record<string, unknown>;
    const run = await get(`/v1/operations/${op.id}`);
    const top: ShapeMap = { ...OPERATION, metadata: { mark: "optional", properties: INSTANCE_METADATA } };
    expect(documentDrift("run", top, run)).toEqual([]);
    expect(run["metadata"]).toMatchObject({ result: { state: { exit_code: 0 } } });

    const record = await client.api.inspectImage(live.busybox);
    const imported = await get(`/v1/operations/${record.operation_uuid}`);
    expect(imported["kind"]).toBe("image_import");
    const importTop: ShapeMap = { ...OPERATION, metadata: { mark: "optional", properties: IMPORT_METADATA } };
    expect(documentDrift("import", importTop, imported)).toEqual([]);

    const live2 = await base.run("cat", { keepStdinOpen: true });
    const sub = await live2.exec(["sleep", "30"]);
    const running = await get(`/v1/operations/${live2.id}/subprocesses/${sub.spid}`);
    expect(documentDrift("subprocess", INSTANCE_RESULT, running)).toEqual([]);
    expect((running["state"] as { running?: boolean }).running).toBe(true);
    await sub.kill();
    await sub.result();
    const ended = await get(`/v1/operations/${live2.id}/subprocesses/${sub.spid}`);
    expect(documentDrift("subprocess", INSTANCE_RESULT, ended)).toEqual([]);
    expect((ended["state"] as { running?: boolean }).running).toBe(false);
    await live2.main.close();
    await live2.wait();
  }, 240_000);
});
