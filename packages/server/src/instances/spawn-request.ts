import { posix } from "node:path";
import type { ProjectLimits } from "../config/config.js";
import { invalidArgument } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import { decodeStreamInput } from "../core/stream-repr.js";

export const DEFAULT_TIMEOUT = 60;
export const DEFAULT_TRUNCATE = 1024 * 1024;
/** Per-stream capture is held in memory until the run ends, so it is bounded server-side. */
export const MAX_TRUNCATE = 16 * 1024 * 1024;
export const DEFAULT_CWD = "/root";
export const DEFAULT_HOSTNAME = "linuxkit";
const MAX_ID = 2 ** 32 - 2;

export interface FileSpec {
  uuid: string;
  uid: number;
  gid: number;
  /** Always the 4-digit octal string form in metadata (clients need a string). */
  mode: string;
}

/** The normalised spawn request, stored as the operation's metadata (plus `result` later). */
export interface InstanceMetadata {
  command: string;
  image: string;
  args: string[];
  shell: boolean;
  env: Record<string, string>;
  preserve_env: boolean;
  cwd: string;
  hostname: string;
  uid: number;
  gid: number;
  disposable: boolean;
  stdin: { value: string; encoding: "ascii" | "base64"; close: boolean };
  timeout: number;
  truncate_output_at: number;
  files: Record<string, FileSpec>;
  resources_limits: { max_layer_bytes: number };
  networking: { enabled: boolean };
  [key: string]: unknown;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const given = (v: unknown) => v !== undefined && v !== null;

function bool(b: Obj, key: string, dflt: boolean): boolean {
  const v = b[key];
  if (!given(v)) return dflt;
  if (typeof v !== "boolean") throw invalidArgument(`${key} must be a boolean`);
  return v;
}

function int(v: unknown, key: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(`${key} must be an integer between ${min} and ${max}`);
  }
  return v;
}

function absPath(v: unknown, key: string): string {
  if (typeof v !== "string" || !v.startsWith("/")) throw invalidArgument(`${key} must be an absolute path`);
  if (v.includes("\0") || v.length > 4096) throw invalidArgument(`${key} is not a valid path`);
  return posix.normalize(v);
}

/** `"0644"`, `"0o644"`, `"0o100644"`, `"644"` or an integer: keep the permission bits. */
export function parseMode(v: unknown, key: string): string {
  let n: number;
  if (!given(v)) n = 0o644;
  else if (typeof v === "number" && Number.isInteger(v) && v >= 0) n = v;
  else if (typeof v === "string" && /^(0o|0O)?[0-7]{1,7}$/.test(v.trim()))
    n = Number.parseInt(v.trim().replace(/^0[oO]/, ""), 8);
  else throw invalidArgument(`${key} must be an octal mode like "0644"`);
  return (n & 0o7777).toString(8).padStart(4, "0");
}

/** Validates and normalises a spawn body. Unknown keys are ignored (clients send extras). */
export function parseSpawnRequest(
  body: unknown,
  limits: ProjectLimits,
  defaultNetworking: boolean,
): { meta: InstanceMetadata; stdinBytes: Buffer } {
  if (!isObj(body)) throw invalidArgument("request body must be a JSON object");
  const command = body["command"];
  if (typeof command !== "string" || command === "")
    throw invalidArgument("command must be a non-empty string");
  if (command.includes("\0")) throw invalidArgument("command must not contain NUL");
  const image = body["image"];
  if (typeof image !== "string" || image === "")
    throw invalidArgument('image must be an image UUID or "tag:NAME"');
  if (!image.startsWith("tag:") && !isUuid(image.toLowerCase()))
    throw invalidArgument('image must be an image UUID or "tag:NAME"');

  let args: string[] = [];
  if (given(body["args"])) {
    const a = body["args"];
    if (!Array.isArray(a) || !a.every((x) => typeof x === "string" && !x.includes("\0")))
      throw invalidArgument("args must be an array of strings");
    args = a as string[];
  }
  const env: Record<string, string> = {};
  if (given(body["env"])) {
    const e = body["env"];
    if (!isObj(e)) throw invalidArgument("env must be an object of strings");
    for (const [k, v] of Object.entries(e)) {
      if (typeof v !== "string") throw invalidArgument(`env.${k} must be a string`);
      if (k === "" || k.includes("=") || k.includes("\0") || v.includes("\0"))
        throw invalidArgument(`env key ${JSON.stringify(k)} is invalid`);
      env[k] = v;
    }
  }
  const cwdRaw = body["cwd"];
  const cwd = !given(cwdRaw) || cwdRaw === "" ? DEFAULT_CWD : absPath(cwdRaw, "cwd");
  let hostname = DEFAULT_HOSTNAME;
  if (given(body["hostname"]) && body["hostname"] !== "") {
    const h = body["hostname"];
    if (typeof h !== "string" || !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(h))
      throw invalidArgument("hostname must be a valid host name (at most 63 characters)");
    hostname = h;
  }
  const uid = given(body["uid"]) ? int(body["uid"], "uid", 0, MAX_ID) : 0;
  const gid = given(body["gid"]) ? int(body["gid"], "gid", 0, MAX_ID) : 0;

  let stdin: InstanceMetadata["stdin"] = { value: "", encoding: "ascii", close: true };
  // Decoded once here (validation) and handed back: a spawn stdin may be 16 MiB.
  let stdinBytes: Buffer = Buffer.alloc(0);
  if (given(body["stdin"])) {
    const s = body["stdin"];
    if (typeof s === "string") {
      stdin = { value: s, encoding: "ascii", close: true };
      stdinBytes = decodeStreamInput(s, "ascii", "stdin");
    } else if (isObj(s)) {
      const value = s["value"] ?? "";
      const encoding = s["encoding"] ?? "ascii";
      if (typeof value !== "string") throw invalidArgument("stdin.value must be a string");
      if (encoding !== "ascii" && encoding !== "base64")
        throw invalidArgument('stdin.encoding must be "ascii" or "base64"');
      stdinBytes = decodeStreamInput(value, encoding, "stdin");
      stdin = { value, encoding, close: given(s["close"]) ? bool(s, "close", true) : true };
    } else throw invalidArgument("stdin must be an object {value, encoding}");
  }

  const timeout = given(body["timeout"])
    ? Math.min(int(body["timeout"], "timeout", 1, 7 * 86400), limits.instance_max_timeout)
    : Math.min(DEFAULT_TIMEOUT, limits.instance_max_timeout);
  const truncate = given(body["truncate_output_at"])
    ? int(body["truncate_output_at"], "truncate_output_at", 0, Number.MAX_SAFE_INTEGER)
    : DEFAULT_TRUNCATE;

  const files: Record<string, FileSpec> = {};
  if (given(body["files"])) {
    const f = body["files"];
    if (!isObj(f)) throw invalidArgument("files must be an object mapping absolute paths to file specs");
    for (const [path, spec] of Object.entries(f)) {
      const p = absPath(path, `files key ${JSON.stringify(path.slice(0, 100))}`);
      if (p === "/") throw invalidArgument("files: cannot write to /");
      if (!isObj(spec))
        throw invalidArgument(`files[${JSON.stringify(path)}] must be an object {uuid, mode, uid, gid}`);
      const uuid = spec["uuid"];
      if (typeof uuid !== "string" || !isUuid(uuid.toLowerCase()))
        throw invalidArgument(`files[${JSON.stringify(path)}].uuid must be a file UUID`);
      files[p] = {
        uuid: uuid.toLowerCase(),
        uid: given(spec["uid"]) ? int(spec["uid"], "files.uid", 0, MAX_ID) : 0,
        gid: given(spec["gid"]) ? int(spec["gid"], "files.gid", 0, MAX_ID) : 0,
        mode: parseMode(spec["mode"], `files[${JSON.stringify(path)}].mode`),
      };
    }
  }

  let maxLayer = limits.instance_max_layer_bytes;
  if (given(body["resources_limits"])) {
    const r = body["resources_limits"];
    if (!isObj(r)) throw invalidArgument("resources_limits must be an object");
    if (given(r["max_layer_bytes"]))
      maxLayer = Math.min(
        int(r["max_layer_bytes"], "resources_limits.max_layer_bytes", 1, Number.MAX_SAFE_INTEGER),
        limits.instance_max_layer_bytes,
      );
  }
  let networking = defaultNetworking;
  if (given(body["networking"])) {
    const n = body["networking"];
    if (!isObj(n)) throw invalidArgument("networking must be an object {enabled}");
    networking = bool(n, "enabled", defaultNetworking);
  }

  const meta: InstanceMetadata = {
    command,
    image,
    args,
    shell: bool(body, "shell", false),
    env,
    preserve_env: bool(body, "preserve_env", false),
    cwd,
    hostname,
    uid,
    gid,
    disposable: bool(body, "disposable", false),
    stdin,
    timeout,
    truncate_output_at: Math.min(truncate, MAX_TRUNCATE),
    files,
    resources_limits: { max_layer_bytes: maxLayer },
    networking: { enabled: networking },
  };
  return { meta, stdinBytes };
}
