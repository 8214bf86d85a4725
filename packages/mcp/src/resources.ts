import { ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Variables } from "@modelcontextprotocol/sdk/shared/uriTemplate.js";
import type { ContreeApi, Json } from "./contree-api.js";
import { GUIDE } from "./guide-text.js";
import { streamText } from "./runs.js";
import type { ToolContext } from "./tool-kit.js";
import { utf8 } from "./tools/files.js";

function one(v: Variables, name: string): string {
  const x = v[name];
  return decodeURIComponent(Array.isArray(x) ? x.join("/") : (x ?? ""));
}

function textOf(uri: URL, text: string, mimeType = "text/plain") {
  return { contents: [{ uri: uri.href, mimeType, text }] };
}

/** Every image of the project whose parent is `uuid` (one pass over the listing). */
async function childrenOf(api: ContreeApi, uuid: string): Promise<string[]> {
  const out: string[] = [];
  for (let offset = 0; ; offset += 1000) {
    const doc = await api.json({ method: "GET", path: "/v1/images", query: { limit: 1000, offset } });
    const rows = (doc["images"] as Json[] | undefined) ?? [];
    for (const r of rows) if (r["parent_uuid"] === uuid) out.push(String(r["uuid"]));
    if (rows.length < 1000) return out;
  }
}

/** The lineage document of the official resource, answered from the server's image records. */
async function lineage(api: ContreeApi, image: string): Promise<Json> {
  const uuid = await api.resolveImage(image);
  const img = await api.image(uuid).catch(() => undefined);
  if (!img)
    return {
      image: uuid,
      parent: null,
      children: [],
      ancestors: [],
      root: null,
      depth: 0,
      is_known: false,
      data: null,
    };
  const ancestors: string[] = [];
  const seen = new Set([uuid]);
  let parent = (img["parent_uuid"] as string | null | undefined) ?? null;
  for (let p = parent; p && !seen.has(p) && ancestors.length < 10_000; ) {
    seen.add(p);
    ancestors.push(p);
    const up = await api.image(p).catch(() => undefined);
    // A deleted ancestor is still named (lineage keeps its id) but its own parent is not visible.
    p = (up?.["parent_uuid"] as string | null | undefined) ?? null;
  }
  const opId = img["operation_uuid"];
  const op = typeof opId === "string" ? await api.operation(opId).catch(() => undefined) : undefined;
  const meta = (op?.["metadata"] ?? {}) as Json;
  parent = parent ?? null;
  return {
    image: uuid,
    parent,
    children: await childrenOf(api, uuid),
    ancestors,
    root: ancestors.at(-1) ?? uuid,
    depth: ancestors.length,
    is_known: true,
    data: {
      parent_image: parent,
      operation_id: opId ?? null,
      kind: op ? String(op["kind"] ?? "").toLowerCase() : null,
      command: typeof meta["command"] === "string" ? meta["command"] : null,
      registry_url: ((meta["registry"] ?? {}) as Json)["url"] ?? null,
      tag: img["tag"] ?? null,
      created_at: img["created_at"] ?? null,
    },
  };
}

export function registerResources(ctx: ToolContext): void {
  const { server, api } = ctx;

  server.registerResource(
    "image-file",
    new ResourceTemplate("contree://image/{image}/read/{+path}", { list: undefined }),
    {
      description:
        'A file of an image, e.g. contree://image/tag:busybox:latest/read/etc/passwd (path without leading slash). Binary content comes as "base64:<data>".',
    },
    async (uri, v) => {
      const uuid = await api.resolveImage(one(v, "image"));
      const path = `/${one(v, "path").replace(/^\/+/, "")}`;
      const data = await api.raw({ method: "GET", path: `/v1/inspect/${uuid}/download`, query: { path } });
      const text = utf8(data);
      return textOf(uri, text ?? `base64:${Buffer.from(data).toString("base64")}`);
    },
  );

  server.registerResource(
    "image-ls",
    new ResourceTemplate("contree://image/{image}/ls/{+path}", { list: undefined }),
    {
      description:
        'A directory of an image as ls -l style text; path without leading slash, "." for the root.',
    },
    async (uri, v) => {
      const uuid = await api.resolveImage(one(v, "image"));
      const p = one(v, "path");
      const path = p === "." || p === "" ? "/" : `/${p.replace(/^\/+/, "")}`;
      const data = await api.raw({
        method: "GET",
        path: `/v1/inspect/${uuid}/list`,
        query: { path, text: "" },
      });
      return textOf(uri, Buffer.from(data).toString("utf8"));
    },
  );

  server.registerResource(
    "image-lineage",
    new ResourceTemplate("contree://image/{image}/lineage", { list: undefined }),
    {
      description:
        "Parent, children, ancestors (nearest first), root and the creating operation of an image, from the server's image records.",
      mimeType: "application/json",
    },
    async (uri, v) =>
      textOf(uri, JSON.stringify(await lineage(api, one(v, "image")), null, 2), "application/json"),
  );

  server.registerResource(
    "instance-operation",
    new ResourceTemplate("contree://operations/instance/{operation_id}", { list: undefined }),
    {
      description: "A run: state, exit_code, timed_out, stdout, stderr, result_image, resources.",
      mimeType: "application/json",
    },
    async (uri, v) => {
      const id = one(v, "operation_id");
      const op = await api.operation(id);
      if (String(op["kind"]).toLowerCase() !== "instance")
        throw new Error(`operation ${id} is not an instance operation (kind=${String(op["kind"])})`);
      const out: Json = { state: op["status"] };
      if (op["error"]) out["error"] = op["error"];
      const result = op["result"] as Json | null | undefined;
      if (result) {
        out["result_image"] = result["image"] ?? null;
        if (result["tag"]) out["result_tag"] = result["tag"];
      }
      const r = ((op["metadata"] ?? {}) as Json)["result"] as Json | null | undefined;
      if (r) {
        const state = (r["state"] ?? {}) as Json;
        out["exit_code"] = state["exit_code"];
        out["timed_out"] = state["timed_out"];
        out["stdout"] = streamText(r["stdout"]);
        out["stderr"] = streamText(r["stderr"]);
        if (r["resources"]) out["resources"] = r["resources"];
      }
      return textOf(uri, JSON.stringify(out, null, 2), "application/json");
    },
  );

  server.registerResource(
    "import-operation",
    new ResourceTemplate("contree://operations/import/{operation_id}", { list: undefined }),
    { description: "An image import as text lines: STATE, RESULT_IMAGE, RESULT_TAG, REGISTRY_URL, ERROR." },
    async (uri, v) => {
      const id = one(v, "operation_id");
      const op = await api.operation(id);
      if (String(op["kind"]).toLowerCase() !== "image_import")
        throw new Error(`operation ${id} is not an import operation (kind=${String(op["kind"])})`);
      const result = (op["result"] ?? {}) as Json;
      const url = (((op["metadata"] ?? {}) as Json)["registry"] as Json | undefined)?.["url"];
      const lines = [`STATE: ${String(op["status"])}`];
      if (result["image"]) lines.push(`RESULT_IMAGE: ${String(result["image"])}`);
      if (result["tag"]) lines.push(`RESULT_TAG: ${String(result["tag"])}`);
      if (url) lines.push(`REGISTRY_URL: ${String(url)}`);
      if (op["error"]) lines.push(`ERROR:\n${String(op["error"])}`);
      return textOf(uri, lines.join("\n"));
    },
  );

  for (const [section, text] of Object.entries(GUIDE))
    server.registerResource(
      `guide-${section}`,
      `contree://guide/${section}`,
      {
        title: `ConTree guide: ${section}`,
        description: `Guide section on ${section}`,
        mimeType: "text/markdown",
      },
      async (uri) => textOf(uri, text, "text/markdown"),
    );
}
