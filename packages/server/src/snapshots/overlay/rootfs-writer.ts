import { lstatSync } from "node:fs";
import { chmod, chown, copyFile, lstat, mkdir, readlink, rm } from "node:fs/promises";
import { join, posix } from "node:path";
import { invalidArgument, unprocessable } from "../../core/errors.js";

const MAX_SYMLINKS = 40;

/**
 * Resolves `path` inside `root` the way the sandbox would see it, but confined: symlinks
 * (absolute or with `..`) are followed relative to the root and can never lead outside it.
 * Missing parent directories are created (root:root 0755). Returns the host path of the final
 * component, whose own symlink (if any) is NOT followed.
 */
async function resolveForWrite(root: string, path: string): Promise<string> {
  const want = posix
    .normalize(path)
    .split("/")
    .filter((c) => c !== "" && c !== ".");
  if (want.length === 0) throw invalidArgument("cannot write to /");
  const done: string[] = [];
  let pending = want.slice(0, -1);
  let hops = 0;
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === "..") {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    let st: Awaited<ReturnType<typeof lstat>> | undefined;
    try {
      st = await lstat(host);
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") throw err;
    }
    if (st === undefined) {
      await mkdir(host, { mode: 0o755 });
      done.push(c);
    } else if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINKS) throw unprocessable(`too many symbolic links in ${path}`);
      const target = await readlink(host);
      const parts = target.split("/").filter((x) => x !== "" && x !== ".");
      if (target.startsWith("/")) done.length = 0;
      pending = [...parts, ...pending];
    } else if (st.isDirectory()) {
      done.push(c);
    } else {
      throw unprocessable(`cannot create ${path}: a parent is not a directory`);
    }
  }
  return join(root, ...done, want[want.length - 1] as string);
}

/** Copies a blob into the rootfs at `path` with ownership and mode (replacing what was there). */
export async function writeFileInto(
  root: string,
  path: string,
  source: string,
  o: { uid: number; gid: number; mode: number },
): Promise<void> {
  const host = await resolveForWrite(root, path);
  try {
    const st = await lstat(host);
    if (st.isDirectory()) throw unprocessable(`cannot write file ${path}: it is a directory in the image`);
    await rm(host, { force: true });
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
  }
  await copyFile(source, host);
  await chown(host, o.uid, o.gid);
  await chmod(host, o.mode);
}

/**
 * True when every component of `path` below `root` is a real directory (no symlink, nothing
 * missing): then the path cannot lead outside the root and exists as is. Sync lstats on an
 * overlay whose dentries are cached: microseconds, where the general resolver's thread-pool
 * round trips cost a millisecond on every run's path.
 */
export function isPlainDirInside(root: string, path: string): boolean {
  let host = root;
  for (const c of posix.normalize(path).split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") return false;
    host = join(host, c);
    try {
      if (!lstatSync(host).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Makes sure a directory exists at `path` (for the working directory). */
export async function ensureDir(root: string, path: string): Promise<void> {
  if (posix.normalize(path) === "/") return;
  if (isPlainDirInside(root, path)) return;
  const host = await resolveForWrite(root, path);
  try {
    const st = await lstat(host);
    if (st.isDirectory()) return;
    if (st.isSymbolicLink()) return; // the runtime resolves it inside the container
    throw unprocessable(`cwd ${path} is not a directory`);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
    await mkdir(host, { mode: 0o755 });
  }
}
