// Where the URL and token come from: explicit options, then CONTREE_* environment variables, then the
// official clients' profile files (contree-api.md 1.3). File access uses node: modules through dynamic
// imports, so browsers and other runtimes without them just skip the profile step.

import { ConfigurationError } from "./errors.js";

export type AuthType = "iam" | "jwt";

export interface Profile {
  name: string;
  url?: string;
  token?: string;
  project?: string;
  type: AuthType;
}

export interface ConfigOptions {
  /** Base URL, possibly with a path prefix; `/v1` is appended. Default: `CONTREE_URL`, then the profile. */
  url?: string;
  /** Bearer token. Default: `CONTREE_TOKEN`, then the profile. */
  token?: string;
  /** Sent as the `Project` header. Default: `CONTREE_PROJECT`, then the profile. */
  project?: string;
  /** Profile name in auth.ini. When given, environment variables are not consulted. */
  profile?: string;
  /** Environment to read instead of `process.env` (tests, non-Node runtimes). */
  env?: Record<string, string | undefined>;
}

export interface ResolvedConfig {
  /** Base URL including the `/v1` suffix, no trailing slash. */
  apiUrl: string;
  token: string;
  project?: string;
  /** Which source supplied the settings, for diagnostics. */
  source: "options" | "env" | `profile:${string}`;
}

/** Production default for `iam` profiles without a url (CLI config.py). */
export const NEBIUS_DEFAULT_URL = "https://api.tokenfactory.nebius.com/sandboxes";

export type IniDocument = Map<string, Map<string, string>>;

/**
 * Parses INI the way Python's configparser does for these files: `[section]`, `key = value` or
 * `key: value`, keys lower-cased, `#`/`;` full-line comments, indented continuation lines, and
 * `[DEFAULT]` values inherited by every section.
 */
export function parseIni(text: string): IniDocument {
  const doc: IniDocument = new Map();
  let section: Map<string, string> | undefined;
  let lastKey: string | undefined;
  for (const raw of text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/)) {
    if (/^\s*([#;]|$)/.test(raw)) {
      lastKey = undefined;
      continue;
    }
    if (/^\s/.test(raw) && section && lastKey !== undefined) {
      const prev = section.get(lastKey) ?? "";
      section.set(lastKey, prev === "" ? raw.trim() : `${prev}\n${raw.trim()}`);
      continue;
    }
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(raw);
    if (header) {
      const name = header[1]!.trim();
      section = doc.get(name) ?? new Map();
      doc.set(name, section);
      lastKey = undefined;
      continue;
    }
    const kv = /^\s*([^=:]+?)\s*[=:]\s*(.*?)\s*$/.exec(raw);
    if (!kv || !section) continue; // keys before any section are an error in configparser; skip them
    lastKey = kv[1]!.toLowerCase();
    section.set(lastKey, kv[2]!);
  }
  const defaults = doc.get("DEFAULT");
  if (defaults) {
    for (const [name, values] of doc) {
      if (name === "DEFAULT") continue;
      for (const [k, v] of defaults) if (!values.has(k)) values.set(k, v);
    }
  }
  return doc;
}

/** Merges documents left to right; later files override keys of earlier ones. */
export function mergeIni(...docs: IniDocument[]): IniDocument {
  const out: IniDocument = new Map();
  for (const doc of docs) {
    for (const [name, values] of doc) {
      const target = out.get(name) ?? new Map();
      for (const [k, v] of values) target.set(k, v);
      out.set(name, target);
    }
  }
  return out;
}

/** Picks a profile: explicit name, then `CONTREE_PROFILE`, then `[DEFAULT] profile`. */
export function selectProfile(doc: IniDocument, name?: string): Profile | undefined {
  const chosen = name ?? doc.get("DEFAULT")?.get("profile");
  if (!chosen) return undefined;
  const section = doc.get(`profile:${chosen}`);
  if (!section) return undefined;
  const type: AuthType = section.get("type")?.toLowerCase() === "iam" ? "iam" : "jwt";
  const profile: Profile = { name: chosen, type };
  const url = section.get("url") || (type === "iam" ? NEBIUS_DEFAULT_URL : undefined);
  if (url) profile.url = url;
  const token = section.get("token");
  if (token) profile.token = token;
  const project = section.get("project");
  if (project) profile.project = project;
  return profile;
}

export function processEnv(): Record<string, string | undefined> {
  const g = globalThis as { process?: { env?: Record<string, string | undefined> } };
  return g.process?.env ?? {};
}

/** `$CONTREE_HOME`, else `$XDG_CONFIG_HOME/contree`, else `~/.config/contree`. Undefined off Node. */
export async function configDir(env: Record<string, string | undefined>): Promise<string | undefined> {
  if (env["CONTREE_HOME"]) return env["CONTREE_HOME"];
  if (env["XDG_CONFIG_HOME"]) return `${env["XDG_CONFIG_HOME"]}/contree`;
  const home = env["HOME"] ?? (await import("node:os").then((os) => os.homedir()).catch(() => undefined));
  return home ? `${home}/.config/contree` : undefined;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    const fs = await import("node:fs/promises");
    return await fs.readFile(path, "utf8");
  } catch {
    return undefined; // missing file, or no node:fs in this runtime
  }
}

/** Reads cli.ini then auth.ini from the config directory and selects a profile. */
export async function loadProfile(
  env: Record<string, string | undefined>,
  name?: string,
): Promise<{ profile?: Profile; dir?: string }> {
  const dir = await configDir(env);
  if (!dir) return {};
  const docs: IniDocument[] = [];
  for (const file of ["cli.ini", "auth.ini"]) {
    const text = await readText(`${dir}/${file}`);
    if (text !== undefined) docs.push(parseIni(text));
  }
  const profile = selectProfile(mergeIni(...docs), name ?? (env["CONTREE_PROFILE"] || undefined));
  return profile ? { profile, dir } : { dir };
}

export function apiUrlFromBase(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch (cause) {
    throw new ConfigurationError(`invalid ConTree URL: ${base}`, { cause });
  }
  const path = url.pathname.replace(/\/+$/, "");
  // Tolerate a base that already ends in /v1 (people copy the documented https://api.contree.dev/v1).
  const prefix = path.endsWith("/v1") ? path : `${path}/v1`;
  return `${url.origin}${prefix}`;
}

export async function resolveConfig(options: ConfigOptions = {}): Promise<ResolvedConfig> {
  const env = options.env ?? processEnv();
  const useEnv = options.profile === undefined;
  const envUrl = useEnv ? env["CONTREE_URL"] || undefined : undefined;
  const envToken = useEnv ? env["CONTREE_TOKEN"] || env["NEBIUS_API_KEY"] || undefined : undefined;
  const envProject = useEnv ? env["CONTREE_PROJECT"] || env["NEBIUS_AI_PROJECT"] || undefined : undefined;

  let url = options.url ?? envUrl;
  let token = options.token ?? envToken;
  let project = options.project ?? envProject;
  let source: ResolvedConfig["source"] = options.url && options.token ? "options" : "env";
  if (!url || !token || options.profile !== undefined) {
    const { profile, dir } = await loadProfile(env, options.profile);
    if (options.profile !== undefined && !profile) {
      throw new ConfigurationError(
        `profile "${options.profile}" not found in ${dir ?? "the config directory"}`,
      );
    }
    if (profile) {
      if (!url && profile.url) {
        url = profile.url;
        source = `profile:${profile.name}`;
      }
      if (!token && profile.token) {
        token = profile.token;
        source = `profile:${profile.name}`;
      }
      project ??= profile.project;
    }
  }
  if (!url)
    throw new ConfigurationError("no ConTree URL: pass `url`, set CONTREE_URL, or configure a profile");
  if (!token)
    throw new ConfigurationError("no ConTree token: pass `token`, set CONTREE_TOKEN, or configure a profile");
  const resolved: ResolvedConfig = { apiUrl: apiUrlFromBase(url), token, source };
  if (project) resolved.project = project;
  return resolved;
}
