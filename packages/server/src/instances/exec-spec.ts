import { constants as osConstants } from "node:os";
import { invalidArgument } from "../core/errors.js";
import { DEFAULT_TRUNCATE, MAX_TRUNCATE } from "./spawn-request.js";

export interface ExecSpec {
  command: string;
  args: string[];
  shell: boolean;
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  stdin: { value: string; encoding: "ascii" | "base64"; close: boolean };
  truncate_output_at: number;
}

/** "TERM", "SIGTERM" or "15" → "SIGTERM"; anything else is a 400. */
export function parseSignal(s: string | undefined): NodeJS.Signals {
  const raw = (s ?? "TERM").trim().toUpperCase();
  const byName = raw.startsWith("SIG") ? raw : `SIG${raw}`;
  const table = osConstants.signals as Readonly<Record<string, number>>;
  if (table[byName] !== undefined) return byName as NodeJS.Signals;
  if (/^\d+$/.test(raw)) {
    const hit = Object.entries(table).find(([, n]) => n === Number(raw));
    if (hit) return hit[0] as NodeJS.Signals;
  }
  throw invalidArgument(`unknown signal ${JSON.stringify(s)}`);
}

export function parseExecSpec(body: unknown, defaults: { cwd: string }): ExecSpec {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw invalidArgument("request body must be a JSON object");
  const b = body as Record<string, unknown>;
  if (typeof b["command"] !== "string" || b["command"] === "")
    throw invalidArgument("command must be a non-empty string");
  const args = b["args"] ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string"))
    throw invalidArgument("args must be an array of strings");
  const env = b["env"] ?? {};
  if (
    typeof env !== "object" ||
    env === null ||
    Array.isArray(env) ||
    !Object.values(env).every((v) => typeof v === "string")
  ) {
    throw invalidArgument("env must be an object of strings");
  }
  const int = (k: string) => {
    const v = b[k];
    if (v === undefined || v === null) return 0;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
      throw invalidArgument(`${k} must be a non-negative integer`);
    return v;
  };
  const cwd = b["cwd"] === undefined || b["cwd"] === null || b["cwd"] === "" ? defaults.cwd : b["cwd"];
  if (typeof cwd !== "string" || !cwd.startsWith("/")) throw invalidArgument("cwd must be an absolute path");
  let stdin: ExecSpec["stdin"] = { value: "", encoding: "ascii", close: true };
  const s = b["stdin"];
  if (s !== undefined && s !== null) {
    if (typeof s !== "object") throw invalidArgument("stdin must be an object {value, encoding, close}");
    const o = s as Record<string, unknown>;
    const value = o["value"] ?? "";
    const encoding = o["encoding"] ?? "ascii";
    if (typeof value !== "string" || (encoding !== "ascii" && encoding !== "base64"))
      throw invalidArgument("stdin must be {value: string, encoding: ascii|base64}");
    const close = o["close"] === undefined || o["close"] === null ? true : o["close"];
    if (typeof close !== "boolean") throw invalidArgument("stdin.close must be a boolean");
    stdin = { value, encoding, close };
  }
  const t = b["truncate_output_at"];
  const truncate = t === undefined || t === null ? DEFAULT_TRUNCATE : t;
  if (typeof truncate !== "number" || !Number.isInteger(truncate) || truncate < 0)
    throw invalidArgument("truncate_output_at must be a non-negative integer");
  return {
    command: b["command"],
    args: args as string[],
    shell: b["shell"] === true,
    env: env as Record<string, string>,
    cwd,
    uid: int("uid"),
    gid: int("gid"),
    stdin,
    truncate_output_at: Math.min(truncate, MAX_TRUNCATE),
  };
}
