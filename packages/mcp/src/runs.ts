import type { ContreeApi, Json } from "./contree-api.js";
import type { DirectoryStates } from "./directory-states.js";

/** What a run takes beyond image and command, with the official `run` tool's names. */
export interface RunOptions {
  shell: boolean;
  env?: Record<string, string> | undefined;
  cwd: string;
  timeout: number;
  stdin?: string | undefined;
  directory_state_id?: number | undefined;
  files?: Record<string, string> | undefined;
  truncate_output_at: number;
}

/** StreamRepr of text: ascii when it is, base64 otherwise. */
function streamRepr(text: string): Json {
  const buf = Buffer.from(text, "utf8");
  const ascii = buf.every((b) => b < 0x80);
  return {
    value: ascii ? text : buf.toString("base64"),
    encoding: ascii ? "ascii" : "base64",
    truncated: false,
  };
}

function spawnFiles(states: DirectoryStates | undefined, o: RunOptions): Json {
  const files: Json = {};
  if (o.directory_state_id !== undefined) {
    const state = states?.get(o.directory_state_id);
    if (!state)
      throw new Error(
        `directory state ${o.directory_state_id} not found: directory states live as long as this MCP server process; call contree_rsync again`,
      );
    for (const f of state) files[f.target] = { uuid: f.uuid, mode: `0o${(f.mode & 0o7777).toString(8)}` };
  }
  for (const [path, uuid] of Object.entries(o.files ?? {})) files[path] = { uuid, mode: "0o644" };
  return files;
}

/** Starts a run (`POST /v1/instances` with every field, as the official server sends it); returns its operation id. */
export async function spawnRun(
  api: ContreeApi,
  states: DirectoryStates | undefined,
  image: string,
  command: string,
  disposable: boolean,
  o: RunOptions,
): Promise<string> {
  const uuid = await api.resolveImage(image);
  const op = await api.json({
    method: "POST",
    path: "/v1/instances",
    json: {
      command,
      image: uuid,
      shell: o.shell,
      args: [],
      env: o.env ?? {},
      cwd: o.cwd,
      timeout: o.timeout,
      hostname: "linuxkit",
      disposable,
      stdin: streamRepr(o.stdin ?? ""),
      truncate_output_at: o.truncate_output_at,
      files: spawnFiles(states, o),
    },
  });
  return String(op["uuid"]);
}

export function streamText(s: unknown): string {
  const st = (s ?? {}) as Json;
  const value = String(st["value"] ?? "");
  return st["encoding"] === "base64" ? Buffer.from(value, "base64").toString("utf8") : value;
}

/** A finished run in a few flat fields (what contree_fork returns per command). */
export function runSummary(id: string, doc: Json): Json {
  const res = ((doc["metadata"] as Json | undefined)?.["result"] ?? {}) as Json;
  const state = (res["state"] ?? {}) as Json;
  return {
    operation_id: id,
    status: doc["status"],
    exit_code: state["exit_code"] ?? null,
    timed_out: state["timed_out"] ?? false,
    stdout: streamText(res["stdout"]),
    stderr: streamText(res["stderr"]),
    result_image: ((doc["result"] ?? {}) as Json)["image"] ?? null,
    error: doc["error"] ?? null,
  };
}

/** Starts every command from `image` at once and waits for all; on failure or abort none is left running. */
export async function forkRuns(
  api: ContreeApi,
  states: DirectoryStates | undefined,
  image: string,
  commands: readonly string[],
  disposable: boolean,
  o: RunOptions,
  signal?: AbortSignal,
): Promise<Json[]> {
  const started = await Promise.allSettled(
    commands.map((c) => spawnRun(api, states, image, c, disposable, o)),
  );
  const ids = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  try {
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const docs = await Promise.all(ids.map((id) => api.waitOperation(id, signal ? { signal } : {})));
    return docs.map((d, i) => ({ command: commands[i], ...runSummary(ids[i] ?? "", d) }));
  } catch (err) {
    await Promise.all(ids.map((id) => api.cancel(id).catch(() => undefined)));
    throw err;
  }
}
