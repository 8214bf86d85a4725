import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { type ContreeApi, type Json, operationResponse } from "../contree-api.js";
import { forkRuns, spawnRun } from "../runs.js";
import { ok, type ToolContext } from "../tool-kit.js";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What a run from an image takes beyond the command (the official `run` tool's arguments and defaults). */
export const runOptions = {
  shell: z.boolean().default(true),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().min(1).max(4096).default("/root"),
  timeout: z.number().int().min(1).max(86_400).default(30),
  stdin: z.string().optional(),
  directory_state_id: z.number().int().optional(),
  files: z.record(z.string(), z.string()).optional(),
  truncate_output_at: z.number().int().min(1).default(8000),
};

/**
 * Forwards stdout/stderr events of an operation as progress notifications (only when the caller
 * asked for progress with a token). Events are read in replayed pages after the last id seen.
 */
function outputForwarder(api: ContreeApi, id: string, extra: Extra) {
  const token = extra._meta?.progressToken;
  if (token === undefined) return undefined;
  let since = -1;
  let progress = 0;
  return async () => {
    const body = await api.raw({
      method: "GET",
      path: `/v1/operations/${id}/events`,
      query: { since, spid: 1 },
    });
    for (const line of Buffer.from(body).toString("utf8").split("\n")) {
      if (!line.startsWith("data: ")) continue;
      let e: Json;
      try {
        e = JSON.parse(line.slice(6)) as Json;
      } catch {
        continue;
      }
      if (typeof e["id"] === "number") {
        if (e["id"] <= since) continue;
        since = e["id"];
      }
      if (e["type"] !== "stdout" && e["type"] !== "stderr") continue;
      const d = e["data"] as Json;
      const text =
        d["encoding"] === "base64"
          ? Buffer.from(String(d["value"]), "base64").toString("utf8")
          : String(d["value"] ?? "");
      if (text === "") continue;
      progress += text.length;
      await extra.sendNotification({
        method: "notifications/progress",
        params: { progressToken: token, progress, message: `${e["type"]}: ${text}` },
      });
    }
  };
}

export function registerRunTools(ctx: ToolContext): void {
  const { server, api } = ctx;

  server.registerTool(
    "contree_run",
    {
      description:
        'Run a command in a fresh sandbox from an image (UUID or "tag:NAME"); the image itself never changes. disposable=true (default) throws the filesystem away; disposable=false saves it as result.image to chain the next run from. files={"/path/in/sandbox": "<uuid from contree_upload>"}, directory_state_id from contree_rsync. With wait=false returns {operation_id} (poll with contree_wait_operations). Output: the operation (status, metadata.result.stdout/stderr/state.exit_code, result.image). Send a progressToken to receive output live.',
      inputSchema: {
        command: z.string().min(1),
        image: z.string().min(1).max(300),
        ...runOptions,
        disposable: z.boolean().default(true),
        wait: z.boolean().default(true),
      },
    },
    async (a, extra) => {
      const id = await spawnRun(api, ctx.states, a.image, a.command, a.disposable, a);
      if (!a.wait) return ok({ operation_id: id });
      const onPoll = outputForwarder(api, id, extra);
      const doc = await api.waitOperation(id, { signal: extra.signal, ...(onPoll ? { onPoll } : {}) });
      await onPoll?.();
      return ok(operationResponse(doc));
    },
  );

  server.registerTool(
    "contree_fork",
    {
      description:
        "Run several commands from the same image in parallel, each in its own sandbox, in one call. Each saved filesystem is its own result image (disposable=false by default), so this is how to branch: try N approaches, keep the best. Returns results[] in the order of commands with operation_id, status, exit_code, stdout, stderr, result_image.",
      inputSchema: {
        image: z.string().min(1).max(300),
        commands: z.array(z.string().min(1)).min(1).max(32),
        ...runOptions,
        disposable: z.boolean().default(false),
      },
    },
    async (a, extra) => {
      const results = await forkRuns(api, ctx.states, a.image, a.commands, a.disposable, a, extra.signal);
      return ok({ image: a.image, results });
    },
  );
}
