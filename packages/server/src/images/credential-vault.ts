/**
 * Registry credentials of queued imports, kept for the life of their operation so that a
 * private-registry import still waiting in the queue runs after a restart.
 *
 * Each operation's credentials are one file `<dir>/<operation id>` (0600, directory 0700),
 * sealed with AES-256-GCM; the operation id is the associated data, so a sealed file moved to
 * another operation does not open. The key is 32 random bytes in `<dir>.key` (0600), created at
 * first start. A key file rather than a configured secret: nothing for the operator to set up or
 * lose between restarts, and the key never enters the database, its backups or the
 * environment of child processes. Whoever can read the data directory as the server's user can
 * read both; what the sealing buys is that the credentials never sit in clear text on disk and
 * that deleting the key makes every sealed file useless at once.
 *
 * Nothing here logs or returns the credentials except `take` to the import that owns them.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmod, link, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { AppError } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { Credentials } from "../registry/registry-client.js";

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export class CredentialVault {
  private constructor(
    private readonly dir: string,
    private readonly key: Buffer,
  ) {}

  /** Opens (creating at first start) the vault directory `dir` and its key file `<dir>.key`. */
  static async open(dir: string): Promise<CredentialVault> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    return new CredentialVault(dir, await loadOrCreateKey(`${dir}.key`));
  }

  /** Seals `credentials` for operation `id` (durably: the file is synced before it is named). */
  async put(id: string, credentials: Credentials): Promise<void> {
    const file = this.#file(id);
    const tmp = `${file}.tmp`;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(aad(id));
    const plain = Buffer.from(JSON.stringify({ u: credentials.username, p: credentials.password }));
    const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
    plain.fill(0);
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), sealed]));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  /**
   * The credentials of operation `id`: undefined when none were kept, "unreadable" when a file
   * is there but does not open (another key, damaged).
   */
  async take(id: string): Promise<Credentials | undefined | "unreadable"> {
    let data: Buffer;
    try {
      data = await readFile(this.#file(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      if (data[0] !== VERSION || data.length < 1 + IV_BYTES + TAG_BYTES) return "unreadable";
      const decipher = createDecipheriv("aes-256-gcm", this.key, data.subarray(1, 1 + IV_BYTES));
      decipher.setAAD(aad(id));
      decipher.setAuthTag(data.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
      const plain = Buffer.concat([
        decipher.update(data.subarray(1 + IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]);
      const doc = JSON.parse(plain.toString("utf8")) as { u?: unknown; p?: unknown };
      plain.fill(0);
      if (typeof doc.u !== "string" || typeof doc.p !== "string") return "unreadable";
      return { username: doc.u, password: doc.p };
    } catch {
      return "unreadable";
    }
  }

  async delete(id: string): Promise<void> {
    await rm(this.#file(id), { force: true });
  }

  /**
   * Removes the credentials (sealed or half-written) of every operation `keep` does not keep;
   * `keep` must also keep those being `put` right now.
   */
  async sweep(keep: (id: string) => Promise<boolean>): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir)) {
      const id = name.endsWith(".tmp") ? name.slice(0, -4) : name;
      if (isUuid(id) && (await keep(id))) continue;
      await rm(join(this.dir, name), { force: true });
      removed++;
    }
    return removed;
  }

  #file(id: string): string {
    // Operation ids are server-made UUIDs; anything else must never become a path.
    if (!isUuid(id)) throw new AppError("internal", "credential vault: not an operation id");
    return join(this.dir, id);
  }
}

function aad(id: string): Buffer {
  return Buffer.from(`contree import credentials v${VERSION} ${id}`);
}

async function loadOrCreateKey(path: string): Promise<Buffer> {
  // Written aside and linked into place: a crash never leaves a short key, and of two servers
  // starting on one data dir the second reads the first one's key.
  const existing = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (existing !== null) return checkedKey(existing);
  // A random name, created exclusively: two servers (both pid 1 in their containers) never share it.
  const tmp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(randomBytes(KEY_BYTES));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  await chmod(path, 0o600);
  return checkedKey(await readFile(path));
}

function checkedKey(key: Buffer): Buffer {
  if (key.length !== KEY_BYTES)
    throw new AppError("internal", "the import credential key file is damaged (expected 32 bytes)");
  return key;
}
