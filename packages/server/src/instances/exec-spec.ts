import { constants as osConstants } from "node:os";
import { posix } from "node:path";
import type { Static } from "@sinclair/typebox";
import { invalidArgument } from "../core/errors.js";
import { Maybe, Open } from "../core/schema.js";
import {
  DEFAULT_TRUNCATE,
  MAX_TRUNCATE,
  SpawnBodySchema,
  StdinSchema,
  stdinOf,
  TtySchema,
  ttyOf,
} from "./spawn-request.js";

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
  /** Extension: a pseudo-terminal of this size (docs/terminals.md). */
  tty?: { rows: number; cols: number };
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

/** `POST /v1/operations/{id}/subprocesses` (ExecSpec). */
export const ExecBodySchema = Open({
  command: SpawnBodySchema.properties.command,
  args: SpawnBodySchema.properties.args,
  shell: SpawnBodySchema.properties.shell,
  env: SpawnBodySchema.properties.env,
  cwd: SpawnBodySchema.properties.cwd,
  uid: SpawnBodySchema.properties.uid,
  gid: SpawnBodySchema.properties.gid,
  stdin: Maybe(StdinSchema),
  truncate_output_at: SpawnBodySchema.properties.truncate_output_at,
  ...TtySchema,
});
type ExecBody = Static<typeof ExecBodySchema>;

/** Defaults of an exec (its cwd is the instance's) and the server's output cap. */
export function execSpecOf(b: ExecBody, defaults: { cwd: string }): ExecSpec {
  const t = ttyOf(b);
  return {
    ...("tty" in t ? { tty: { rows: t.rows, cols: t.cols } } : {}),
    command: b.command,
    args: b.args ?? [],
    shell: b.shell ?? false,
    env: b.env ?? {},
    cwd: b.cwd ? posix.normalize(b.cwd) : defaults.cwd,
    uid: b.uid ?? 0,
    gid: b.gid ?? 0,
    // A terminal stays open for typing until its process ends, unless the request says otherwise.
    stdin: { ...stdinOf(b.stdin).stdin, ...("tty" in t && b.stdin == null ? { close: false } : {}) },
    truncate_output_at: Math.min(b.truncate_output_at ?? DEFAULT_TRUNCATE, MAX_TRUNCATE),
  };
}
