import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import path from "node:path";

export interface SearchHit<N> {
  needle: N;
  /**
   * Where, as the sandbox saw it ("/etc/app.conf"): never a host path. For a hit in an entry's
   * name, the directory holding it (the name itself would show the needle).
   */
  path: string;
}

const CHUNK = 1024 * 1024;

/**
 * The first of `needles` found in what a run wrote (an upper dir, unmounted): in the contents of
 * regular files (streamed in 1 MiB chunks with an overlap of the longest needle less one byte,
 * so memory stays bounded whatever the size), in symlink targets and in entry names. Whiteouts
 * and other special files hold no bytes. Extended attributes are not read.
 */
export async function searchTree<N extends { bytes: Buffer }>(
  upper: string,
  needles: readonly N[],
): Promise<SearchHit<N> | null> {
  if (needles.length === 0) return null;
  const overlap = Math.max(...needles.map((n) => n.bytes.length)) - 1;
  const first = (data: Buffer): N | undefined => needles.find((n) => data.includes(n.bytes));
  const stack = [upper];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    for (const name of await readdir(dir)) {
      const p = path.join(dir, name);
      const shown = `/${path.relative(upper, p)}`;
      const inName = first(Buffer.from(name));
      if (inName) return { needle: inName, path: `/${path.relative(upper, dir)}` };
      const st = await lstat(p);
      let hit: N | undefined;
      if (st.isDirectory()) stack.push(p);
      else if (st.isSymbolicLink()) hit = first(Buffer.from(await readlink(p, { encoding: "buffer" })));
      else if (st.isFile() && st.size > 0) hit = await searchFile(p, overlap, first);
      if (hit) return { needle: hit, path: shown };
    }
  }
  return null;
}

async function searchFile<N>(
  file: string,
  overlap: number,
  first: (data: Buffer) => N | undefined,
): Promise<N | undefined> {
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) {
    const data = tail.length === 0 ? (chunk as Buffer) : Buffer.concat([tail, chunk as Buffer]);
    const hit = first(data);
    if (hit !== undefined) return hit;
    tail = overlap > 0 ? Buffer.from(data.subarray(Math.max(0, data.length - overlap))) : Buffer.alloc(0);
  }
  return undefined;
}
