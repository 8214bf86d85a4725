// The Vercel AI SDK tool definitions, each `execute` called against a real server (no model needed).

import type { ToolExecutionOptions } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contreeTools } from "../src/ai.js";
import { type Live, startLive } from "./live.js";

let live: Live;
beforeAll(async () => {
  live = await startLive();
}, 240_000);
afterAll(async () => {
  await live?.close();
});

/** Calls a tool's `execute` as the AI SDK would after a model's tool call. */
async function exec<I>(
  t: { execute?: (input: I, options: ToolExecutionOptions) => unknown },
  input: I,
  abortSignal?: AbortSignal,
): Promise<Record<string, unknown>> {
  if (!t.execute) throw new Error("tool without execute");
  const out = await t.execute(input, {
    toolCallId: "call",
    messages: [],
    ...(abortSignal ? { abortSignal } : {}),
  });
  return out as Record<string, unknown>;
}

describe("contreeTools for the AI SDK", () => {
  it("runs, branches, reads and lists through the tools' execute", async () => {
    const tools = contreeTools({ url: live.url, token: live.t.token, defaultImage: "tag:busybox:latest" });
    const schema = tools.contree_run.inputSchema as unknown as {
      parse(v: unknown): { command: string; image: string; save: boolean };
    };
    // The default image is filled in when the model names none.
    const args = schema.parse({ command: "echo base > /state; echo ran" });
    expect(args).toMatchObject({ image: "tag:busybox:latest", save: true });

    const run = await exec(tools.contree_run, args);
    expect(run).toMatchObject({ status: "SUCCESS", exit_code: 0, stdout: "ran\n" });
    const base = String(run["result_image"]);
    expect(base).toMatch(/^[0-9a-f-]{36}$/);

    const fork = await exec(tools.contree_fork, {
      image: base,
      commands: ["echo left >> /state", "echo right >> /state"],
    });
    const branches = (fork["results"] as Array<Record<string, unknown>>).map((r) =>
      String(r["result_image"]),
    );
    expect(new Set([base, ...branches]).size).toBe(3);

    const read = async (image: string) =>
      (await exec(tools.contree_read_file, { image, path: "/state" }))["content"];
    expect(await Promise.all([base, ...branches].map(read))).toEqual([
      "base\n",
      "base\nleft\n",
      "base\nright\n",
    ]);

    const ls = await exec(tools.contree_list_files, { image: base, path: "/" });
    expect(ls["files"]).toContainEqual({ name: "state", type: "file", size: 5 });
  });

  it("cancels the run when the call is aborted, and reports server errors", async () => {
    const tools = contreeTools({ url: live.url, token: live.t.token });
    const abort = new AbortController();
    const run = exec(
      tools.contree_run,
      { command: "sleep 60", image: live.busybox, save: false },
      abort.signal,
    );
    const settled = run.then(
      () => "resolved",
      () => "rejected",
    );
    let id = "";
    while (!id) {
      const rows = (await (await live.t.api("/v1/operations?status=EXECUTING")).json()) as Array<
        Record<string, unknown>
      >;
      id = String(rows[0]?.["uuid"] ?? "");
      if (!id) await new Promise((r) => setTimeout(r, 50));
    }
    abort.abort();
    expect(await settled).toBe("rejected");
    for (;;) {
      const op = (await (await live.t.api(`/v1/operations/${id}`)).json()) as Record<string, unknown>;
      if (op["status"] === "CANCELLED") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await expect(exec(tools.contree_read_file, { image: live.busybox, path: "/no/such" })).rejects.toThrow(
      /HTTP 404/,
    );
  });
});
