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
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { chmod, readFile, rename, rm, statfs, writeFile } from "node:fs/promises";
import path from "node:path";
import { mounter } from "../sys/mount.js";

const BIND_DIR = "/run/contree-binds";
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

/**
 * A copy of host file `source` on the bind tmpfs, shared by every sandbox (mode 0755, named by
 * its content hash so servers of different versions never replace each other's), or null when
 * the tmpfs is not there. Written to a temporary name and renamed: no sandbox sees it half-written.
 */
export async function sharedBindFile(source: string, name: string): Promise<string | null> {
  ready ??= ensureTmpfs(BIND_DIR).catch(() => false);
  if (!(await ready)) return null;
  const bytes = await readFile(source);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const file = path.join(BIND_DIR, `${name}-${hash}`);
  if (existsSync(file)) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes, { mode: 0o755 });
  await chmod(tmp, 0o755);
  await rename(tmp, file);
  return file;
}

/** Removes every bind source of sandbox `id` (idempotent); by name, so no listing of the shared dir. */
export async function removeBindFiles(id: string): Promise<void> {
  for (const n of BIND_FILE_NAMES) await rm(path.join(BIND_DIR, `${id}.${n}`), { force: true });
}
