import { z } from "zod";
import type { Json } from "../contree-api.js";
import { ok, type ToolContext } from "../tool-kit.js";

/** Modes as octal text, the way contree_list_files shows them. */
function side(s: unknown): Json | undefined {
  if (typeof s !== "object" || s === null) return undefined;
  const o = s as Json;
  return { ...o, mode: typeof o["mode"] === "number" ? `0o${o["mode"].toString(8)}` : o["mode"] };
}

export function registerDiffTool(ctx: ToolContext): void {
  const { server, api } = ctx;

  server.registerTool(
    "contree_diff",
    {
      description:
        'What changed between two images without starting a sandbox (free): files added, removed and changed (type, size, mode, owner, symlink target, content). image and against take a UUID or "tag:NAME"; against defaults to the image\'s parent (the run that made it). path limits it to a subtree; text=true adds unified diffs of small text files. Returns image, against, counts, entries[] (path, status, changes, old, new, diff), truncated.',
      inputSchema: {
        image: z.string().min(1).max(300),
        against: z.string().min(1).max(300).optional(),
        path: z.string().max(4096).optional(),
        text: z.boolean().default(false),
        limit: z.number().int().min(1).max(100_000).default(1000),
      },
    },
    async (a) => {
      const uuid = await api.resolveImage(a.image);
      const against = a.against === undefined ? undefined : await api.resolveImage(a.against);
      const doc = await api.json({
        method: "GET",
        path: `/v1/inspect/${uuid}/diff`,
        query: { against, path: a.path, text: a.text ? "1" : undefined, limit: a.limit },
      });
      const entries = ((doc["entries"] as Json[] | undefined) ?? []).map((e) => {
        const out: Json = { ...e };
        if (e["old"] !== undefined) out["old"] = side(e["old"]);
        if (e["new"] !== undefined) out["new"] = side(e["new"]);
        return out;
      });
      const counts = { added: 0, removed: 0, changed: 0 };
      for (const e of entries) {
        const s = e["status"];
        if (s === "added" || s === "removed" || s === "changed") counts[s]++;
      }
      return ok({
        image: doc["image"],
        against: doc["against"],
        path: doc["path"],
        counts,
        entries,
        truncated: doc["truncated"] ?? false,
        ...(doc["truncated_reason"] ? { truncated_reason: doc["truncated_reason"] } : {}),
      });
    },
  );
}
