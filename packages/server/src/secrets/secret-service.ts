/**
 * Project secrets: stored sealed (secret-cipher.ts), listed by name and metadata, deleted, and
 * revealed only to the run that names them. Nothing here logs, returns over the API or puts a
 * value in an error; `reveal` is the one way out, for the instance handler.
 */
import { invalidArgument, notFound } from "../core/errors.js";
import type { SecretInfo, SecretRepo } from "../metadata/repos/secret-repo.js";
import { type KeySource, seal, unseal } from "./secret-cipher.js";

export const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const SECRET_NAME_PATTERN = SECRET_NAME_RE.source;
/** Shorter values would match too much in the commit-time scan (and are no secret). */
export const SECRET_MIN_BYTES = 8;
export const SECRET_MAX_BYTES = 64 * 1024;

export type { SecretInfo };

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

  /** Creates or replaces; true when created. */
  async set(projectId: string, name: string, value: Buffer): Promise<boolean> {
    checkSecretName(name);
    checkSecretValue(value);
    const key = await this.keys.forSealing();
    return this.repo.put(projectId, name, {
      sealed: seal(key, projectId, name, value),
      keyId: key.id,
      size: value.length,
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

  /** 404 naming the first of `names` the project does not have (spawn checks this synchronously). */
  async assertExist(projectId: string, names: readonly string[]): Promise<void> {
    const found = await this.repo.existing(projectId, names);
    for (const n of names) if (!found.has(n)) throw notFound(`secret ${JSON.stringify(n)} not found`);
  }

  /** The values of `names` for a run (their use time recorded); a clear error when one cannot be opened. */
  async reveal(projectId: string, names: readonly string[]): Promise<Map<string, Buffer>> {
    const rows = await this.repo.sealed(projectId, names);
    const out = new Map<string, Buffer>();
    if (names.length === 0) return out;
    // Deleted since the spawn was accepted: said before anything about the key.
    const found = new Set(rows.map((r) => r.name));
    for (const n of names) if (!found.has(n)) throw notFound(`secret ${JSON.stringify(n)} no longer exists`);
    const key = await this.keys.forOpening(true);
    for (const row of rows) out.set(row.name, unseal(key, projectId, row.name, row));
    await this.repo.touch(projectId, names);
    return out;
  }
}
