import { tool } from "ai";
import { z } from "zod";
import { ContreeApi } from "./contree-api.js";
import { fetchSend, type HttpSend } from "./http.js";
import { forkRuns, type RunOptions, runSummary, spawnRun } from "./runs.js";
import { utf8 } from "./tools/files.js";

export type ContreeToolsOptions = ({ url: string; token: string } | { send: HttpSend }) & {
  /** Image a run starts from when the model names none (UUID or "tag:NAME"). */
  defaultImage?: string;
  /** Seconds a run may take (default 60). */
  timeout?: number;
};

const image = z
  .string()
  .min(1)
  .max(300)
  .describe('Image UUID or "tag:NAME"; every run starts from an immutable image');

/**
 * Tool definitions for the Vercel AI SDK (`generateText({ tools: contreeTools({ url, token }) })`):
 * run, fork, read a file, list a directory. Runs save their filesystem as a new image by default,
 * so the model can branch from any earlier result.
 */
export function contreeTools(opts: ContreeToolsOptions) {
  const api = new ContreeApi("send" in opts ? opts.send : fetchSend(opts.url, opts.token));
  const imageArg = opts.defaultImage ? image.default(opts.defaultImage) : image;
  const runOpts = (env?: Record<string, string>): RunOptions => ({
    shell: true,
    env,
    cwd: "/root",
    timeout: opts.timeout ?? 60,
    truncate_output_at: 16_000,
  });
  return {
    contree_run: tool({
      description:
        "Run a shell command in a fresh sandbox from an image. Returns exit_code, stdout, stderr and result_image: the sandbox's filesystem saved as a new image (unless save=false) to run the next command from, or to go back to later.",
      inputSchema: z.object({
        command: z.string().min(1),
        image: imageArg,
        save: z.boolean().default(true).describe("Keep the filesystem as result_image"),
        env: z.record(z.string(), z.string()).optional(),
      }),
      execute: async (a, { abortSignal }) => {
        const id = await spawnRun(api, undefined, a.image, a.command, !a.save, runOpts(a.env));
        return runSummary(id, await api.waitOperation(id, abortSignal ? { signal: abortSignal } : {}));
      },
    }),
    contree_fork: tool({
      description:
        "Run several commands from the same image in parallel, each in its own sandbox; each result has its own result_image. Use it to try alternatives and keep the best.",
      inputSchema: z.object({ image: imageArg, commands: z.array(z.string().min(1)).min(1).max(32) }),
      execute: async (a, { abortSignal }) => ({
        image: a.image,
        results: await forkRuns(api, undefined, a.image, a.commands, false, runOpts(), abortSignal),
      }),
    }),
    contree_read_file: tool({
      description: "Read a file of an image without starting a sandbox.",
      inputSchema: z.object({ image: imageArg, path: z.string().min(1).max(4096) }),
      execute: async (a, { abortSignal }) => {
        const uuid = await api.resolveImage(a.image);
        const data = await api.raw(
          { method: "GET", path: `/v1/inspect/${uuid}/download`, query: { path: a.path } },
          abortSignal,
        );
        const text = utf8(data);
        return {
          path: a.path,
          content: text ?? Buffer.from(data).toString("base64"),
          encoding: text === undefined ? "base64" : "utf-8",
          bytes_size: data.length,
        };
      },
    }),
    contree_list_files: tool({
      description: "List a directory of an image without starting a sandbox.",
      inputSchema: z.object({ image: imageArg, path: z.string().max(4096).default("/") }),
      execute: async (a, { abortSignal }) => {
        const uuid = await api.resolveImage(a.image);
        const doc = await api.json<{ path?: string; files?: Array<Record<string, unknown>> }>(
          { method: "GET", path: `/v1/inspect/${uuid}/list`, query: { path: a.path } },
          abortSignal,
        );
        return {
          path: doc.path ?? a.path,
          files: (doc.files ?? []).map((f) => ({
            name: String(f["path"]),
            type: f["is_symlink"] ? "symlink" : f["is_dir"] ? "directory" : "file",
            size: f["size"],
          })),
        };
      },
    }),
  };
}
