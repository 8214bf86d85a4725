import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface McpCliConfig {
  url: string;
  token: string;
}

export const DEFAULT_URL = "https://contree.dev";

/**
 * `[DEFAULT]` (or section-less) `key = value` pairs of an INI file, the format the official
 * server reads from ~/.config/contree/mcp.ini. Other sections hold its HTTP and cache options.
 */
export function parseIni(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let section = "default";
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = (head[1] ?? "").trim().toLowerCase();
      continue;
    }
    const m = /^([^=:]+)[=:](.*)$/.exec(line);
    if (m && section === "default")
      out[(m[1] ?? "").trim().toLowerCase().replace(/-/g, "_")] = (m[2] ?? "").trim();
  }
  return out;
}

function argValue(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === `--${name}`) return argv[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

/**
 * Settings with the official server's precedence: command line, then CONTREE_MCP_* environment,
 * then the config file (CONTREE_MCP_CONFIG, default ~/.config/contree/mcp.ini), then defaults.
 */
export function loadCliConfig(argv: readonly string[], env: NodeJS.ProcessEnv): McpCliConfig {
  const path = env["CONTREE_MCP_CONFIG"] ?? "~/.config/contree/mcp.ini";
  const file = path.startsWith("~/") ? join(env["HOME"] ?? homedir(), path.slice(2)) : path;
  let ini: Record<string, string> = {};
  try {
    ini = parseIni(readFileSync(file, "utf8"));
  } catch {
    // no config file: command line and environment only
  }
  const pick = (name: string) =>
    argValue(argv, name) ?? env[`CONTREE_MCP_${name.toUpperCase()}`] ?? ini[name] ?? undefined;
  const token = pick("token");
  if (!token)
    throw new Error("a token is required: --token, CONTREE_MCP_TOKEN, or token = ... in the config file");
  return { url: pick("url") ?? DEFAULT_URL, token };
}
