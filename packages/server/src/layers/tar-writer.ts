/**
 * Streaming POSIX (PAX) tar writer. Fields that do not fit a ustar header — long or non-ASCII
 * names and link targets, sizes ≥ 8 GiB, large ids, fractional or negative mtimes, xattrs
 * (`SCHILY.xattr.*`, raw bytes) — go into a per-entry PAX header, as GNU tar writes them.
 */
import { Readable } from "node:stream";
import { dataLoss, invalidArgument } from "../core/errors.js";
import { major, minor } from "./device.js";
import type { MergedStat, MergedView } from "./merged-view.js";

export type TarWriterType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface TarWriterEntry {
  /** Member name without a leading "/" (a trailing "/" is added for directories). */
  name: string;
  type: TarWriterType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch (fractions and negatives are kept via PAX). */
  mtime: number;
  /** Content length of a regular file; the body must produce exactly this many bytes. */
  size?: number;
  /** Symlink target or hardlink target member name. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
  /** Content of a regular file, opened when the entry is written. */
  body?: () => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
}

const BLOCK = 512;
const ZERO = Buffer.alloc(BLOCK * 2);
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;

const TYPEFLAG: Record<TarWriterType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

/** A tar stream of the given entries, produced on demand (back-pressure follows the consumer). */
export function writeTar(entries: AsyncIterable<TarWriterEntry> | Iterable<TarWriterEntry>): Readable {
  return Readable.from(generate(entries), { objectMode: false });
}

async function* generate(
  entries: AsyncIterable<TarWriterEntry> | Iterable<TarWriterEntry>,
): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    yield* encodeEntry(e);
  }
  yield ZERO;
}

async function* encodeEntry(e: TarWriterEntry): AsyncGenerator<Buffer> {
  let name = e.name.replace(/^\/+/, "");
  if (name === "") throw invalidArgument("tar member name is empty");
  if (e.type === "dir" && !name.endsWith("/")) name += "/";
  const size = e.type === "file" ? (e.size ?? 0) : 0;
  if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument("invalid tar member size");
  const linkname = e.linkname ?? "";

  const pax: Array<[string, Buffer]> = [];
  const viaPax = <T>(key: string, value: string, headerValue: T): T => {
    pax.push([key, Buffer.from(value)]);
    return headerValue;
  };
  const nameField = fitsUstar(name, 100) ? name : viaPax("path", name, asciiStub(name, 100));
  const linkField = fitsUstar(linkname, 100)
    ? linkname
    : viaPax("linkpath", linkname, asciiStub(linkname, 100));
  const sizeField = size > MAX_OCTAL_12 ? viaPax("size", String(size), 0) : size;
  const uidField = e.uid > MAX_OCTAL_8 ? viaPax("uid", String(e.uid), 0) : e.uid;
  const gidField = e.gid > MAX_OCTAL_8 ? viaPax("gid", String(e.gid), 0) : e.gid;
  let mtimeField = e.mtime;
  if (!Number.isInteger(e.mtime) || e.mtime < 0 || e.mtime > MAX_OCTAL_12) {
    pax.push(["mtime", Buffer.from(formatMtime(e.mtime))]);
    mtimeField = Math.min(Math.max(Math.floor(e.mtime), 0), MAX_OCTAL_12);
  }
  const uname = e.uname ?? "";
  const gname = e.gname ?? "";
  const unameField = fitsUstar(uname, 32) ? uname : viaPax("uname", uname, "");
  const gnameField = fitsUstar(gname, 32) ? gname : viaPax("gname", gname, "");
  for (const [k, v] of e.xattrs ?? []) pax.push([`SCHILY.xattr.${k}`, v]);

  if (pax.length > 0) {
    const data = encodePax(pax);
    const base = name.replace(/\/+$/, "").split("/").pop() ?? "entry";
    yield header({
      name: asciiStub(`PaxHeaders/${base}`, 100),
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.length,
      mtime: mtimeField,
      typeflag: "x",
      linkname: "",
      uname: "",
      gname: "",
      devmajor: 0,
      devminor: 0,
    });
    yield* padded(data);
  }
  yield header({
    name: nameField,
    mode: e.mode & 0o7777,
    uid: uidField,
    gid: gidField,
    size: sizeField,
    mtime: mtimeField,
    typeflag: TYPEFLAG[e.type],
    linkname: linkField,
    uname: unameField,
    gname: gnameField,
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  });
  if (e.type !== "file" || size === 0) return;
  if (!e.body) throw invalidArgument("tar member has a size but no body");
  let written = 0;
  for await (const c of await e.body()) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    written += b.length;
    if (written > size) throw dataLoss("file grew while it was archived");
    yield b;
  }
  if (written !== size) throw dataLoss("file shrank while it was archived");
  const pad = (BLOCK - (size % BLOCK)) % BLOCK;
  if (pad > 0) yield Buffer.alloc(pad);
}

function* padded(data: Buffer): Generator<Buffer> {
  yield data;
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  if (pad > 0) yield Buffer.alloc(pad);
}

function fitsUstar(s: string, max: number): boolean {
  // non-ASCII goes to PAX so that readers that decode headers as Latin-1 still get it right
  if (s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 0x7f) return false;
  }
  return true;
}

function asciiStub(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, "_").slice(0, max);
}

function formatMtime(t: number): string {
  const s = t.toFixed(9).replace(/\.?0+$/, "");
  return s === "-0" ? "0" : s;
}

/** PAX records "LEN KEY=VALUE\n", where LEN counts its own digits. */
export function encodePax(records: ReadonlyArray<readonly [string, Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of records) {
    const rest = Buffer.byteLength(k) + v.length + 3; // " " "=" "\n"
    let len = rest + String(rest).length;
    if (String(len).length !== String(rest).length) len = rest + String(len).length;
    parts.push(Buffer.from(`${len} ${k}=`), v, Buffer.from("\n"));
  }
  return Buffer.concat(parts);
}

interface HeaderFields {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(f.name, 0, 100, "utf8");
  octal(h, 100, 8, f.mode);
  octal(h, 108, 8, f.uid);
  octal(h, 116, 8, f.gid);
  octal(h, 124, 12, f.size);
  octal(h, 136, 12, f.mtime);
  h.fill(0x20, 148, 156);
  h.write(f.typeflag, 156, 1, "latin1");
  h.write(f.linkname, 157, 100, "utf8");
  h.write("ustar\u000000", 257, 8, "latin1");
  h.write(f.uname, 265, 32, "utf8");
  h.write(f.gname, 297, 32, "utf8");
  octal(h, 329, 8, f.devmajor);
  octal(h, 337, 8, f.devminor);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return h;
}

function octal(h: Buffer, off: number, len: number, v: number): void {
  const s = Math.max(0, Math.floor(v)).toString(8);
  if (s.length > len - 1) throw invalidArgument("tar header field overflow");
  h.write(`${s.padStart(len - 1, "0")}\0`, off, len, "latin1");
}

interface ArchiveOptions {
  /** Emit later names of a multiply-linked file as hardlinks to the first (default true). */
  hardlinks?: boolean;
}

/**
 * A tar of `path` in the merged view and everything below it, member names relative to "/"
 * (e.g. archiving "/etc" yields "etc/", "etc/passwd", …). Archiving "/" omits the root entry.
 */
export function archiveView(view: MergedView, path: string, opts: ArchiveOptions = {}): Readable {
  return writeTar(viewEntries(view, path, opts.hardlinks ?? true));
}

async function* viewEntries(
  view: MergedView,
  path: string,
  hardlinks: boolean,
): AsyncGenerator<TarWriterEntry> {
  const firstName = new Map<string, string>();
  for await (const st of view.walk(path)) {
    if (st.path === "/") continue;
    const name = st.path.slice(1);
    const base = common(st, name);
    const first = hardlinks && st.type !== "dir" && st.nlink > 1 ? firstName.get(st.inode) : undefined;
    if (first !== undefined) {
      yield { ...base, type: "hardlink", linkname: first };
      continue;
    }
    if (hardlinks && st.type !== "dir" && st.nlink > 1) firstName.set(st.inode, name);
    const xattrs = await st.xattrs();
    switch (st.type) {
      case "file":
        yield {
          ...base,
          type: "file",
          size: st.size,
          xattrs,
          body: async () => (await view.openRead(st.path)).stream,
        };
        break;
      case "symlink":
        yield { ...base, type: "symlink", linkname: await view.readlink(st.path) };
        break;
      case "char":
      case "block":
        yield { ...base, type: st.type, xattrs, devmajor: major(st.rdev), devminor: minor(st.rdev) };
        break;
      case "dir":
      case "fifo":
        yield { ...base, type: st.type, xattrs };
        break;
      case "socket":
        break; // tar cannot hold sockets (GNU tar skips them too)
    }
  }
}

function common(st: MergedStat, name: string): Omit<TarWriterEntry, "type"> {
  return { name, mode: st.mode, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
}
