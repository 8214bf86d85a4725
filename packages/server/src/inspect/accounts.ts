/**
 * User and group names of an image, read from the image's own /etc/passwd and /etc/group (never
 * the host's). Files are hostile: only the first MAX_BYTES are read, malformed lines are skipped.
 */
import type { MergedView } from "../layers/merged-view.js";

const MAX_BYTES = 1024 * 1024;

export interface Accounts {
  user(uid: number): string;
  group(gid: number): string;
}

export async function readAccounts(view: MergedView): Promise<Accounts> {
  const [users, groups] = await Promise.all([readIdMap(view, "/etc/passwd"), readIdMap(view, "/etc/group")]);
  return {
    user: (uid) => users.get(uid) ?? String(uid),
    group: (gid) => groups.get(gid) ?? String(gid),
  };
}

/** name:x:id:… lines → id → first name that claims it. */
function parseIdFile(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const f = line.split(":");
    const name = f[0];
    const id = f[2];
    if (name === undefined || name === "" || id === undefined || !/^\d{1,10}$/.test(id)) continue;
    const n = Number(id);
    if (!out.has(n)) out.set(n, name);
  }
  return out;
}

async function readIdMap(view: MergedView, path: string): Promise<Map<number, string>> {
  let opened: Awaited<ReturnType<MergedView["openRead"]>>;
  try {
    opened = await view.openRead(path, { start: 0, end: MAX_BYTES - 1 });
  } catch {
    return new Map(); // no such file, or not a regular file: numeric ids only
  }
  const chunks: Buffer[] = [];
  for await (const c of opened.stream) chunks.push(c as Buffer);
  return parseIdFile(Buffer.concat(chunks).toString("utf8"));
}
