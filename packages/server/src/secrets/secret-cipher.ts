/**
 * The sealing of project secrets: AES-256-GCM with a random 96-bit IV per value, the project id
 * and the secret's name as associated data (a sealed value copied to another row does not open).
 *
 * The key comes from `CONTREE_SECRETS_KEY` (32 bytes as 64 hex digits or base64) or else from
 * `<data dir>/secrets.key` (32 random bytes, mode 0600), made when the first secret is stored and
 * never made when one is only read: a server whose key file is gone says so instead of
 * minting a new key that opens nothing. Each row records the id of the key that sealed it (the
 * first 8 bytes of HMAC-SHA256(key, "contree-secrets-key-id"), not reversible), so a server
 * started with another key names the mismatch rather than failing to authenticate.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { chmod, open, readFile, stat } from "node:fs/promises";
import { dataLoss, failedPrecondition, internal } from "../core/errors.js";

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

export interface SecretKey {
  readonly key: Buffer;
  /** 16 hex digits naming the key without revealing it. */
  readonly id: string;
}

export function keyOf(key: Buffer): SecretKey {
  if (key.length !== KEY_BYTES) throw internal("a secrets key is 32 bytes");
  return { key, id: createHmac("sha256", key).update("contree-secrets-key-id").digest("hex").slice(0, 16) };
}

/** `CONTREE_SECRETS_KEY`: 64 hex digits or base64 of 32 bytes; undefined when malformed. */
export function parseKeyText(text: string): Buffer | undefined {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, "hex");
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (b.length === KEY_BYTES) return b;
  }
  return undefined;
}

function aad(projectId: string, name: string): Buffer {
  return Buffer.from(`contree-secret\0${projectId}\0${name}`);
}

export function seal(k: SecretKey, projectId: string, name: string, value: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", k.key, iv);
  cipher.setAAD(aad(projectId, name));
  const sealed = Buffer.concat([cipher.update(value), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), sealed]);
}

/** The value, or a clear error: another key, or a damaged row. Never part of the value in it. */
export function unseal(
  k: SecretKey,
  projectId: string,
  name: string,
  row: { sealed: Buffer; keyId: string },
) {
  if (row.keyId !== k.id)
    throw failedPrecondition(
      `secret ${JSON.stringify(name)} was sealed with another secrets key (key id ${row.keyId}; this server's is ${k.id}): start the server with the key it was stored with (CONTREE_SECRETS_KEY or the data directory's secrets.key), or store the secret again`,
    );
  const data = row.sealed;
  try {
    if (data[0] !== VERSION || data.length < 1 + IV_BYTES + TAG_BYTES) throw new Error("format");
    const decipher = createDecipheriv("aes-256-gcm", k.key, data.subarray(1, 1 + IV_BYTES));
    decipher.setAAD(aad(projectId, name));
    decipher.setAuthTag(data.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(data.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    throw dataLoss(`secret ${JSON.stringify(name)} is damaged (it does not authenticate): store it again`);
  }
}

/** Where the key comes from: configured, or a file in the data directory. */
export class KeySource {
  #cached: SecretKey | undefined;

  constructor(
    private readonly o: {
      /** `CONTREE_SECRETS_KEY`, parsed. */
      configured: Buffer | undefined;
      /** `<data dir>/secrets.key`. */
      file: string;
    },
  ) {
    if (o.configured !== undefined) this.#cached = keyOf(o.configured);
  }

  /** For sealing: the key, the file made (0600) on first use when no key is configured. */
  async forSealing(): Promise<SecretKey> {
    const found = await this.forOpening(false);
    if (found !== undefined) return found;
    const key = randomBytes(KEY_BYTES);
    try {
      const fh = await open(this.o.file, "wx", 0o600);
      try {
        await fh.writeFile(key);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      // Another process (an admin command beside the server) made it first: use that one.
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      return (await this.forOpening(true)) as SecretKey;
    }
    this.#cached = keyOf(key);
    return this.#cached;
  }

  /** For opening: the key, or (required) a clear error naming what is missing. */
  async forOpening(required: true): Promise<SecretKey>;
  async forOpening(required: false): Promise<SecretKey | undefined>;
  async forOpening(required: boolean): Promise<SecretKey | undefined> {
    if (this.#cached !== undefined) return this.#cached;
    let data: Buffer;
    try {
      const st = await stat(this.o.file);
      if ((st.mode & 0o077) !== 0) await chmod(this.o.file, 0o600);
      data = await readFile(this.o.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      if (!required) return undefined;
      throw failedPrecondition(
        "no secrets key: this server has stored secrets but neither CONTREE_SECRETS_KEY nor the data directory's secrets.key is there",
      );
    }
    if (data.length !== KEY_BYTES)
      throw failedPrecondition("the data directory's secrets.key is not a 32-byte key (damaged?)");
    this.#cached = keyOf(data);
    return this.#cached;
  }
}
