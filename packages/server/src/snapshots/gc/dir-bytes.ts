import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

/** Bytes of the regular files under a dir (what removing it frees, hard links aside). */
export async function dirBytes(root: string): Promise<number> {
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    const st = await lstat(dir).catch(() => undefined);
    if (!st) continue;
    if (!st.isDirectory()) {
      if (st.isFile()) total += st.size;
      continue;
    }
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) stack.push(join(dir, n));
  }
  return total;
}
