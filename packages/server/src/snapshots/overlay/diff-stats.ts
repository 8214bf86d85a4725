import { lstat, readdir } from "node:fs/promises";
import path from "node:path";

export interface DiffStats {
  /** Apparent bytes of regular files and symlink targets in the upper. */
  bytes: number;
  /** Entries below the upper's root (files, dirs, whiteouts, links). */
  entries: number;
  /** Nothing written: the run did not change the filesystem. */
  empty: boolean;
  /** Block nodes and char nodes other than overlay's 0/0 whiteouts (a sandbox with CAP_MKNOD made them). */
  devices: number;
}

/** Walks an (unmounted or mounted) upper directory. Does not follow symlinks. */
export async function diffStats(upper: string): Promise<DiffStats> {
  let bytes = 0;
  let entries = 0;
  let devices = 0;
  const stack = [upper];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    const names = await readdir(dir);
    for (const name of names) {
      const p = path.join(dir, name);
      const st = await lstat(p);
      entries++;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile() || st.isSymbolicLink()) bytes += st.size;
      else if (st.isBlockDevice() || (st.isCharacterDevice() && st.rdev !== 0)) devices++;
    }
  }
  return { bytes, entries, empty: entries === 0, devices };
}
