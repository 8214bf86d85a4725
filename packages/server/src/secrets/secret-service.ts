/**
 * Project secrets: stored sealed (secret-cipher.ts), listed by name and metadata, deleted, and
 * revealed only to the run that names them. Nothing here logs, returns over the API or puts a
 * value in an error; `reveal` is the one way out, for the instance handler.
 */
import { invalidArgument, notFound, permissionDenied } from "../core/errors.js";
import type { SecretInfo, SecretPolicy, SecretRepo } from "../metadata/repos/secret-repo.js";
import { type KeySource, seal, unseal } from "./secret-cipher.js";

export const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const SECRET_NAME_PATTERN = SECRET_NAME_RE.source;
/** Shorter values would match too much in the commit-time scan (and are no secret). */
export const SECRET_MIN_BYTES = 8;
export const SECRET_MAX_BYTES = 64 * 1024;

export type { SecretInfo, SecretPolicy };

/** A host pattern: a name, or `*.domain` for its subdomains (lowercase). */
export const HOST_PATTERN_RE = /^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
export const MAX_SECRET_HOSTS = 32;

/** A use a run asks for: env mode, or header mode to `host` (a name or `*.domain`). */
export interface SecretUseRequest {
  name: string;
  host?: string;
}

/** Whether host pattern `wanted` (a run's) lies within `allowed` (the secret's). */
export function hostCovered(allowed: string, wanted: string): boolean {
  if (!allowed.startsWith("*.")) return allowed === wanted;
  const suffix = allowed.slice(1);
  return wanted.endsWith(suffix) && wanted.length > suffix.length;
}

/** 403 unless the secret's policy admits the use (checked at spawn and again at run time). */
export function checkUse(use: SecretUseRequest, p: SecretPolicy): void {
  if (use.host === undefined) {
    if (!p.allowEnv)
      throw permissionDenied(
        `secret ${JSON.stringify(use.name)} may not be given to a run as its value (header mode only)`,
      );
    return;
  }
  if (!p.hosts.some((h) => hostCovered(h, use.host as string)))
    throw permissionDenied(
      `secret ${JSON.stringify(use.name)} may not be sent to ${use.host} (not among its hosts)`,
    );
}

export function normalizeHosts(hosts: readonly string[]): string[] {
  if (hosts.length > MAX_SECRET_HOSTS)
    throw invalidArgument(`a secret has at most ${MAX_SECRET_HOSTS} hosts`);
  const out = [...new Set(hosts.map((h) => h.trim().toLowerCase().replace(/\.$/, "")))];
  for (const h of out)
    if (!HOST_PATTERN_RE.test(h) || h.length > 253)
      throw invalidArgument(`${JSON.stringify(h)} is not a host name or *.domain`);
  return out;
}

export function checkSecretName(name: string): void {
  if (!SECRET_NAME_RE.test(name))
    throw invalidArgument("a secret name is 1-128 characters: a letter or _, then letters, digits, _ . -");
}

/** What may be stored: 8 bytes to 64 KiB, no NUL (an env value cannot hold one), no CR/LF at the ends. */
export function checkSecretValue(value: Buffer): void {
  if (value.length < SECRET_MIN_BYTES || value.length > SECRET_MAX_BYTES)
    throw invalidArgument(`a secret value is ${SECRET_MIN_BYTES} to ${SECRET_MAX_BYTES} bytes`);
  if (value.includes(0)) throw invalidArgument("a secret value cannot contain NUL");
}

/** A file or stdin read for `secret set` usually ends with one newline that is not part of the value. */
export function trimFinalNewline(value: Buffer): Buffer {
  let end = value.length;
  if (end > 0 && value[end - 1] === 0x0a) end--;
  if (end > 0 && value[end - 1] === 0x0d) end--;
  return value.subarray(0, end);
}

export class SecretService {
  constructor(
    private readonly repo: SecretRepo,
    private readonly keys: KeySource,
  ) {}

  /**
   * Creates or replaces; true when created. `hosts`: where header mode may send it (none: no
   * header mode); `allowEnv`: whether a run may have the value itself (default true).
   */
  async set(
    projectId: string,
    name: string,
    value: Buffer,
    policy: { hosts?: readonly string[]; allowEnv?: boolean } = {},
  ): Promise<boolean> {
    checkSecretName(name);
    checkSecretValue(value);
    const hosts = normalizeHosts(policy.hosts ?? []);
    const key = await this.keys.forSealing();
    return this.repo.put(projectId, name, {
      sealed: seal(key, projectId, name, value),
      keyId: key.id,
      size: value.length,
      hosts,
      allowEnv: policy.allowEnv ?? true,
    });
  }

  list(projectId: string): Promise<SecretInfo[]> {
    return this.repo.list(projectId);
  }

  async delete(projectId: string, name: string): Promise<void> {
    checkSecretName(name);
    if (!(await this.repo.delete(projectId, name)))
      throw notFound(`secret ${JSON.stringify(name)} not found`);
  }

  /** 404 for a name the project lacks, 403 for a use its policy refuses (spawn checks this synchronously). */
  async assertUsable(projectId: string, uses: readonly SecretUseRequest[]): Promise<void> {
    const found = await this.repo.policies(
      projectId,
      uses.map((u) => u.name),
    );
    for (const u of uses) {
      const p = found.get(u.name);
      if (!p) throw notFound(`secret ${JSON.stringify(u.name)} not found`);
      checkUse(u, p);
    }
  }

  /**
   * The values of `uses` for a run (their use time recorded): a clear error when one is gone,
   * its policy no longer admits the use, or it cannot be opened.
   */
  async reveal(projectId: string, uses: readonly SecretUseRequest[]): Promise<Map<string, Buffer>> {
    const names = [...new Set(uses.map((u) => u.name))];
    const rows = await this.repo.sealed(projectId, names);
    const out = new Map<string, Buffer>();
    if (names.length === 0) return out;
    // Deleted since the spawn was accepted: said before anything about the key.
    const found = new Set(rows.map((r) => r.name));
    for (const n of names) if (!found.has(n)) throw notFound(`secret ${JSON.stringify(n)} no longer exists`);
    for (const u of uses) checkUse(u, rows.find((r) => r.name === u.name) as SecretPolicy);
    const key = await this.keys.forOpening(true);
    for (const row of rows) out.set(row.name, unseal(key, projectId, row.name, row));
    await this.repo.touch(projectId, names);
    return out;
  }
}
