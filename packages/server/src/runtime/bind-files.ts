/**
 * Host files bind-mounted into sandboxes (resolv.conf). A sandbox reads in /proc/self/mountinfo
 * the path of a bind mount's source relative to the root of the filesystem it lives on: from the
 * data dir that is the full host path. So these files live on a small tmpfs of their own at
 * BIND_DIR, where that path is just `/<sandbox id>.<name>`.
 *
 * The tmpfs is mounted on first use and left in place (a few bytes; later servers reuse it). A
 * server in a private mount namespace (scripts/in-private-mount-ns.sh) gets its own, which goes
 * with the namespace. Files are removed with their sandbox, and by reclaim after a crash.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { rm, statfs } from "node:fs/promises";
import path from "node:path";
import { mounter } from "../sys/mount.js";

export const BIND_DIR = "/run/contree-binds";
const TMPFS_MAGIC = 0x01021994;

/** The files a sandbox may get bound in; removal goes by these names. */
const BIND_FILE_NAMES = ["resolv.conf"] as const;
type BindFileName = (typeof BIND_FILE_NAMES)[number];

let ready: Promise<boolean> | undefined;

async function ensureTmpfs(dir: string): Promise<boolean> {
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  if ((await statfs(dir)).type === TMPFS_MAGIC) return true;
  try {
    // Sandboxes in user namespaces open the files as unprivileged host ids: traversable, not listable.
    // One small file per egress sandbox: room for many thousands running at once.
    await mounter().tmpfs(dir, "size=64m,nr_inodes=1m,mode=0711");
  } catch {
    return false;
  }
  return (await statfs(dir)).type === TMPFS_MAGIC;
}

/**
 * Writes `content` to the bind source for sandbox `id`'s file `name` and returns its path:
 * under BIND_DIR when the tmpfs is there, else in `fallbackDir` (whose path then shows).
 */
export async function writeBindFile(
  id: string,
  name: BindFileName,
  content: string,
  fallbackDir: string,
): Promise<string> {
  ready ??= ensureTmpfs(BIND_DIR).catch(() => false);
  const dir = (await ready) ? BIND_DIR : fallbackDir;
  const file = path.join(dir, `${id}.${name}`);
  writeFileSync(file, content, { mode: 0o644 });
  return file;
}

/** Removes every bind source of sandbox `id` (idempotent); by name, so no listing of the shared dir. */
export async function removeBindFiles(id: string): Promise<void> {
  for (const n of BIND_FILE_NAMES) await rm(path.join(BIND_DIR, `${id}.${n}`), { force: true });
}
