/**
 * A random-access index of a tar file: one pass over the headers (member data is skipped, not
 * read), then members are streamed by offset. Enough tar for image archives: ustar, GNU long
 * names, pax path/linkpath/size. Symlinks and hardlinks between members are resolved inside
 * the archive (docker save writes `<id>/layer.tar -> ../<diffid>.tar`).
 */
import { createReadStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { invalidArgument } from "../core/errors.js";

export interface TarMember {
  /** Normalised: no leading "./" or "/", no trailing "/". */
  readonly name: string;
  /** Tar type flag: "0" file, "1" hardlink, "2" symlink, "5" dir, … */
  readonly type: string;
  readonly linkname: string;
  /** Byte offset of the member's data in the file. */
  readonly offset: number;
  readonly size: number;
}

const BLOCK = 512;
const MAX_MEMBERS = 200_000;
const MAX_EXT_HEADER = 1024 * 1024;

export class TarIndex {
  readonly #path: string;
  readonly #members: ReadonlyMap<string, TarMember>;

  private constructor(path: string, members: Map<string, TarMember>) {
    this.#path = path;
    this.#members = members;
  }

  static async open(path: string): Promise<TarIndex> {
    const fh = await open(path, "r");
    try {
      return new TarIndex(path, await scan(fh));
    } finally {
      await fh.close();
    }
  }

  get names(): string[] {
    return [...this.#members.keys()];
  }

  /** The regular-file member `name` refers to, following in-archive links; undefined if none. */
  resolve(name: string): TarMember | undefined {
    let current = normalise(name);
    for (let hops = 0; hops < 16; hops++) {
      if (current === undefined) return undefined;
      const m = this.#members.get(current);
      if (!m) return undefined;
      if (m.type === "0" || m.type === "7") return m;
      if (m.type === "1") current = normalise(m.linkname);
      else if (m.type === "2")
        current = normalise(
          m.linkname.startsWith("/") ? m.linkname : posix.join(posix.dirname(m.name), m.linkname),
        );
      else return undefined;
    }
    return undefined;
  }

  async readBounded(member: TarMember, max: number, what: string): Promise<Buffer> {
    if (member.size > max) throw invalidArgument(`${what} in the archive is larger than ${max} bytes`);
    const chunks: Buffer[] = [];
    for await (const c of this.stream(member)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async head(member: TarMember, n: number): Promise<Buffer> {
    const fh = await open(this.#path, "r");
    try {
      const buf = Buffer.alloc(Math.min(n, member.size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, member.offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  stream(member: TarMember, signal?: AbortSignal): Readable {
    if (member.size === 0) return Readable.from([]);
    return createReadStream(this.#path, {
      start: member.offset,
      end: member.offset + member.size - 1,
      highWaterMark: 1024 * 1024,
      ...(signal ? { signal } : {}),
    });
  }
}

function normalise(name: string): string | undefined {
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) return undefined; // points outside the archive
      parts.pop();
      continue;
    }
    parts.push(p);
  }
  return parts.length ? parts.join("/") : undefined;
}

async function scan(fh: FileHandle): Promise<Map<string, TarMember>> {
  const { size: fileSize } = await fh.stat();
  const members = new Map<string, TarMember>();
  const header = Buffer.alloc(BLOCK);
  let pos = 0;
  let pax: Map<string, string> | undefined;
  let globalPax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  const bad = (why: string) => invalidArgument(`not a valid image archive: ${why}`);

  while (pos + BLOCK <= fileSize) {
    const { bytesRead } = await fh.read(header, 0, BLOCK, pos);
    if (bytesRead < BLOCK) throw bad("truncated tar header");
    if (header.every((b) => b === 0)) break;
    if (!checksumOk(header)) throw bad(pos === 0 ? "not a tar file" : "corrupt tar header");
    const flag = header[156] ?? 0;
    const type = flag === 0 ? "0" : String.fromCharCode(flag);
    let size = num(header, 124, 12);
    const dataOffset = pos + BLOCK;
    if (type === "x" || type === "g" || type === "L" || type === "K") {
      if (size > MAX_EXT_HEADER) throw bad("oversized extended header");
      if (dataOffset + size > fileSize) throw bad("truncated tar");
      const data = Buffer.alloc(size);
      await fh.read(data, 0, size, dataOffset);
      if (type === "x") pax = parsePax(data);
      else if (type === "g") globalPax = new Map([...globalPax, ...parsePax(data)]);
      else if (type === "L") longName = cstr(data, 0, size);
      else longLink = cstr(data, 0, size);
      pos = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
      continue;
    }
    const px = new Map([...globalPax, ...(pax ?? [])]);
    const ustar = header.toString("latin1", 257, 262) === "ustar";
    const prefix = ustar ? cstr(header, 345, 155) : "";
    const rawName = px.get("path") ?? longName ?? (prefix ? `${prefix}/` : "") + cstr(header, 0, 100);
    const linkname = px.get("linkpath") ?? longLink ?? cstr(header, 157, 100);
    const paxSize = px.get("size");
    if (paxSize !== undefined) {
      if (!/^\d{1,15}$/.test(paxSize)) throw bad("invalid pax size");
      size = Number(paxSize);
    }
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    // Links, directories and devices carry no data whatever the size field says.
    const dataSize =
      type === "0" || type === "7" ? size : type === "1" || type === "2" || type === "5" ? 0 : size;
    if (dataOffset + dataSize > fileSize) throw bad("truncated tar member");
    const name = normalise(rawName);
    if (name !== undefined) {
      if (members.size >= MAX_MEMBERS) throw bad("too many members");
      members.set(name, { name, type, linkname, offset: dataOffset, size: dataSize });
    }
    pos = dataOffset + Math.ceil(dataSize / BLOCK) * BLOCK;
  }
  return members;
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
  const field = cstr(h, 148, 8).trim();
  return /^[0-7]{1,7}$/.test(field) && Number.parseInt(field, 8) === sum;
}

function cstr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString("utf8", off, end < 0 || end > off + len ? off + len : end);
}

function num(b: Buffer, off: number, len: number): number {
  if ((b[off] ?? 0) & 0x80) {
    // base-256 (GNU) for values that do not fit the octal field
    let v = BigInt((b[off] ?? 0) & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[off + i] ?? 0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw invalidArgument("not a valid image archive: size out of range");
    return Number(v);
  }
  const s = cstr(b, off, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw invalidArgument("not a valid image archive: bad number in tar header");
  return Number.parseInt(s, 8);
}

function parsePax(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let o = 0;
  while (o < buf.length) {
    const sp = buf.indexOf(0x20, o);
    if (sp < 0) break;
    const len = Number.parseInt(buf.toString("latin1", o, sp), 10);
    if (!(len > 0) || o + len > buf.length) break;
    const rec = buf.subarray(sp + 1, o + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString("utf8", 0, eq), rec.toString("utf8", eq + 1));
    o += len;
  }
  return out;
}
