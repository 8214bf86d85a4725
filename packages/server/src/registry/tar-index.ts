/**
 * A random-access index of a tar file: one pass over the headers (member data is skipped, not
 * read), then members are streamed by offset. Headers go through the same codec as the layer
 * reader's (core/tar-header.ts), so the two accept and refuse the same archives. Symlinks and hardlinks between members are resolved inside
 * the archive (docker save writes `<id>/layer.tar -> ../<diffid>.tar`).
 */
import { createReadStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { invalidArgument, isAppError } from "../core/errors.js";
import {
  TAR_BLOCK as BLOCK,
  checksumOk,
  decodeHeader,
  isZeroBlock,
  paddedSize,
  TarMeta,
} from "../core/tar-header.js";

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

const MAX_MEMBERS = 200_000;

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
  try {
    return await scanHeaders(fh);
  } catch (err) {
    // The codec's reason, under the one prefix every archive failure has.
    if (isAppError(err) && err.kind === "invalid_argument")
      throw invalidArgument(`not a valid image archive: ${err.message}`);
    throw err;
  }
}

async function scanHeaders(fh: FileHandle): Promise<Map<string, TarMember>> {
  const { size: fileSize } = await fh.stat();
  const members = new Map<string, TarMember>();
  const h = Buffer.alloc(BLOCK);
  const meta = new TarMeta();
  let pos = 0;
  const bad = (why: string) => invalidArgument(why);

  while (pos + BLOCK <= fileSize) {
    const { bytesRead } = await fh.read(h, 0, BLOCK, pos);
    if (bytesRead < BLOCK) throw bad("truncated tar header");
    if (isZeroBlock(h)) {
      if (meta.pending) throw bad("tar metadata header followed by end of archive");
      return members;
    }
    if (pos === 0 && !checksumOk(h)) throw bad("not a tar file");
    const header = decodeHeader(h, pos);
    const dataOffset = pos + BLOCK;
    if (header.meta !== undefined) {
      meta.checkSize(header);
      if (dataOffset + header.size > fileSize) throw bad("truncated tar");
      const data = Buffer.alloc(header.size);
      await fh.read(data, 0, header.size, dataOffset);
      meta.absorb(header.meta, data);
      pos = dataOffset + paddedSize(header.size);
      continue;
    }
    const m = meta.resolve(h, header);
    if (dataOffset + m.size > fileSize) throw bad("truncated tar member");
    const type = header.typeflag === "\0" ? "0" : header.typeflag;
    const name = normalise(m.name);
    if (name !== undefined) {
      if (members.size >= MAX_MEMBERS) throw bad("too many members");
      members.set(name, { name, type, linkname: m.linkname, offset: dataOffset, size: m.size });
    }
    pos = dataOffset + paddedSize(m.size);
  }
  if (meta.pending) throw bad("metadata header without its entry");
  return members;
}
