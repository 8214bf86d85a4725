/** FileItem (contree-api §3.9) and the `ls -l`-like text listing of a directory. */
import type { FileType, MergedStat } from "../layers/merged-view.js";
import type { Accounts } from "./accounts.js";

export interface FileItem {
  path: string;
  size: number;
  owner: string;
  group: string;
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
  nlink: number;
  is_dir: boolean;
  is_regular: boolean;
  is_symlink: boolean;
  is_socket: boolean;
  is_fifo: boolean;
  symlink_to: string;
}

const TYPE_BITS: Record<FileType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

const TYPE_CHAR: Record<FileType, string> = {
  file: "-",
  dir: "d",
  symlink: "l",
  char: "c",
  block: "b",
  fifo: "p",
  socket: "s",
};

export function fileItem(name: string, st: MergedStat, accounts: Accounts, symlinkTo: string): FileItem {
  return {
    path: name,
    size: st.size,
    owner: accounts.user(st.uid),
    group: accounts.group(st.gid),
    uid: st.uid,
    gid: st.gid,
    mode: TYPE_BITS[st.type] | (st.mode & 0o7777),
    mtime: Math.floor(st.mtimeMs / 1000),
    nlink: st.nlink,
    is_dir: st.type === "dir",
    is_regular: st.type === "file",
    is_symlink: st.type === "symlink",
    is_socket: st.type === "socket",
    is_fifo: st.type === "fifo",
    symlink_to: st.type === "symlink" ? symlinkTo : "",
  };
}

/** `-rwsr-xr-x`, from a full st_mode. */
function modeString(mode: number): string {
  const type = (Object.entries(TYPE_BITS).find(([, b]) => (mode & 0o170000) === b)?.[0] ??
    "file") as FileType;
  const bit = (m: number, c: string) => (mode & m ? c : "-");
  const special = (x: number, s: number, on: string) => {
    const exec = (mode & x) !== 0;
    if (mode & s) return exec ? on : on.toUpperCase();
    return exec ? "x" : "-";
  };
  return (
    TYPE_CHAR[type] +
    bit(0o400, "r") +
    bit(0o200, "w") +
    special(0o100, 0o4000, "s") +
    bit(0o040, "r") +
    bit(0o020, "w") +
    special(0o010, 0o2000, "s") +
    bit(0o004, "r") +
    bit(0o002, "w") +
    special(0o001, 0o1000, "t")
  );
}

/** Bytes below 1 KiB as an integer, else two decimals with a binary unit ("1.17 KB"). */
function humanSize(n: number): string {
  if (n < 1024) return String(n);
  const units = ["KB", "MB", "GB", "TB", "PB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)} ${units[u]}`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const HALF_YEAR = 182.5 * 24 * 3600;

/** `ls -l` dates in UTC: "Jan  1 00:00" within six months of now, else "Jan  1  2020". */
function lsDate(mtime: number, now = Date.now() / 1000): string {
  const d = new Date(mtime * 1000);
  const day = String(d.getUTCDate()).padStart(2, " ");
  const recent = Math.abs(now - mtime) < HALF_YEAR;
  const tail = recent
    ? `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`
    : String(d.getUTCFullYear()).padStart(5, " ");
  return `${MONTHS[d.getUTCMonth()]} ${day} ${tail}`;
}

/** The text form of a listing: a "total" line, then one aligned `ls -l` row per entry. */
export function listingText(items: readonly FileItem[], now = Date.now() / 1000): string {
  return [...listingTextChunks(items, items.length + 1, now)].join("");
}

/**
 * The text form in pieces of `rowsPerChunk` rows, so a huge directory can be sent a piece at a
 * time (widths are found in one pass first; no spread of a million arguments).
 */
export function* listingTextChunks(
  items: readonly FileItem[],
  rowsPerChunk: number,
  now = Date.now() / 1000,
): Generator<string> {
  const w = [0, 0, 0, 0, 0];
  let total = 0;
  for (const f of items) {
    w[1] = Math.max(w[1]!, String(f.nlink).length);
    w[2] = Math.max(w[2]!, f.owner.length);
    w[3] = Math.max(w[3]!, f.group.length);
    w[4] = Math.max(w[4]!, humanSize(f.size).length);
    total += f.size;
  }
  let out = `total ${humanSize(total)}\n`;
  let n = 0;
  for (const f of items) {
    const name = f.is_symlink ? `${printable(f.path)} -> ${printable(f.symlink_to)}` : printable(f.path);
    out += `${modeString(f.mode)} ${String(f.nlink).padStart(w[1]!)} ${f.owner.padEnd(w[2]!)} ${f.group.padEnd(w[3]!)} ${humanSize(f.size).padStart(w[4]!)} ${lsDate(f.mtime, now)} ${name}\n`;
    if (++n % rowsPerChunk === 0) {
      yield out;
      out = "";
    }
  }
  if (out !== "") yield out;
}

/** Names are hostile: control characters (a newline would forge a row) are shown escaped. */
function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
