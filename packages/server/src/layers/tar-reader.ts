/**
 * Streaming tar reader for hostile input (OCI layers): ustar/v7 headers, GNU long names and long
 * links (L/K), POSIX PAX extended and global headers (binary-safe: values stay bytes, so
 * `SCHILY.xattr.*` capability sets survive), base-256 numeric fields. Bodies are streamed, never
 * buffered; metadata blocks (PAX, L/K) are bounded. Malformed input is `invalid_argument`, input
 * that ends early is `data_loss`.
 */
import { dataLoss, invalidArgument } from "../core/errors.js";
import {
  TAR_BLOCK as BLOCK,
  DEFAULT_META_LIMITS,
  decodeHeader,
  field,
  isZeroBlock,
  paddedSize,
  parseNumeric,
  paxInt,
  TarMeta,
} from "../core/tar-header.js";

export type TarEntryType = "file" | "hardlink" | "symlink" | "char" | "block" | "dir" | "fifo" | "other";

export interface TarEntry {
  type: TarEntryType;
  /** The raw typeflag character ("0", "5", …); useful for "other". */
  typeflag: string;
  /** Member name as stored (PAX/GNU overrides applied), not normalised. */
  name: string;
  linkname: string;
  size: number;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Seconds since the epoch; PAX may give a fraction. */
  mtime: number;
  devmajor: number;
  devminor: number;
  /** Extended attributes from `SCHILY.xattr.*` (and `LIBARCHIVE.xattr.*`), raw bytes. */
  xattrs: Map<string, Buffer>;
  /** All PAX records in effect for this entry (global merged with local), raw values. */
  pax: ReadonlyMap<string, Buffer>;
  /**
   * The entry's content, streamed; `size` bytes in total. Consume it before asking for the next
   * entry, or leave it and the reader skips it. It can be iterated once.
   */
  body: AsyncIterable<Buffer>;
}

export interface TarReaderOptions {
  /** Largest PAX header (x or g) accepted; default 1 MiB. */
  maxPaxBytes?: number;
  /** Largest GNU long name / long link; default 64 KiB. */
  maxLongNameBytes?: number;
  /**
   * After the end-of-archive marker, keep reading the source to its end (default true), so a
   * caller that hashes the stream sees every byte (tar writers pad with zero blocks).
   */
  drainTrailing?: boolean;
}

const MiB = 1024 * 1024;

/** Pulls exact byte counts out of an async chunk source without copying more than needed. */
class ByteSource {
  private chunks: Buffer[] = [];
  private avail = 0;
  private done = false;
  /** Bytes handed out so far; used in error messages (offsets are not secrets). */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array | string>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const v = r.value;
    const b =
      typeof v === "string"
        ? Buffer.from(v)
        : Buffer.isBuffer(v)
          ? v
          : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    if (b.length > 0) {
      this.chunks.push(b);
      this.avail += b.length;
    }
    return true;
  }

  /** Exactly n bytes, or null at a clean end of input (nothing left), or data_loss if cut short. */
  async exact(n: number): Promise<Buffer | null> {
    while (this.avail < n) {
      if (!(await this.fill())) {
        if (this.avail === 0) return null;
        throw dataLoss(`truncated tar archive at offset ${this.offset + this.avail}`);
      }
    }
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let o = 0;
      while (o < n) {
        const c = this.chunks[0]!;
        const take = Math.min(c.length, n - o);
        c.copy(out, o, 0, take);
        o += take;
        if (take === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(take);
      }
    }
    this.avail -= n;
    this.offset += n;
    return out;
  }

  /** Up to n bytes (at least 1) as they arrive; data_loss if the input ends first. */
  async some(n: number): Promise<Buffer> {
    if (this.avail === 0 && !(await this.fillNonEmpty())) {
      throw dataLoss(`truncated tar archive at offset ${this.offset}`);
    }
    const first = this.chunks[0]!;
    const take = Math.min(first.length, n);
    const out = first.subarray(0, take);
    if (take === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(take);
    this.avail -= take;
    this.offset += take;
    return out;
  }

  private async fillNonEmpty(): Promise<boolean> {
    while (this.avail === 0) if (!(await this.fill())) return false;
    return true;
  }

  async skip(n: number): Promise<void> {
    while (n > 0) n -= (await this.some(n)).length;
  }

  async drain(): Promise<void> {
    this.chunks = [];
    this.avail = 0;
    while (await this.fill()) {
      this.chunks = [];
      this.avail = 0;
    }
  }
}

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "3":
      return "char";
    case "4":
      return "block";
    case "5":
      return "dir";
    case "6":
      return "fifo";
    default:
      return "other";
  }
}

const XATTR_SCHILY = "SCHILY.xattr.";
const XATTR_LIBARCHIVE = "LIBARCHIVE.xattr.";

function xattrsOf(pax: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of pax) {
    if (k.startsWith(XATTR_LIBARCHIVE)) {
      // bsdtar: URL-encoded name, base64 value; SCHILY records (below) win when both exist
      let name: string;
      try {
        name = decodeURIComponent(k.slice(XATTR_LIBARCHIVE.length));
      } catch {
        throw invalidArgument("malformed PAX xattr name");
      }
      out.set(name, Buffer.from(v.toString("latin1"), "base64"));
    }
  }
  for (const [k, v] of pax) {
    if (k.startsWith(XATTR_SCHILY)) out.set(k.slice(XATTR_SCHILY.length), v);
  }
  for (const name of out.keys()) {
    if (name === "" || name.includes("\0")) throw invalidArgument("malformed PAX xattr name");
  }
  return out;
}

/**
 * Iterate over the entries of an uncompressed tar stream. The source is read lazily; each
 * entry's body must be consumed (or abandoned) before the next `next()`.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array | string>,
  options: TarReaderOptions = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const limits = {
    maxPaxBytes: options.maxPaxBytes ?? DEFAULT_META_LIMITS.maxPaxBytes,
    maxLongNameBytes: options.maxLongNameBytes ?? DEFAULT_META_LIMITS.maxLongNameBytes,
  };
  const it = source[Symbol.asyncIterator]();
  const src = new ByteSource(it);
  let finished = false;
  try {
    yield* entries();
    finished = true;
  } finally {
    // stopped early (error, abort, consumer break): release the source (destroys a Readable)
    if (!finished) await it.return?.();
  }

  async function* entries(): AsyncGenerator<TarEntry, void, undefined> {
    const meta = new TarMeta(limits);

    for (;;) {
      const h = await src.exact(BLOCK);
      if (h === null) {
        // Input ended at an entry boundary without the end-of-archive marker. archive/tar (what
        // Docker and containerd use) accepts this; a truncated body or header is still caught.
        if (meta.pending) throw dataLoss("truncated tar archive: metadata header without its entry");
        return;
      }
      if (isZeroBlock(h)) {
        if (meta.pending) throw invalidArgument("tar metadata header followed by end of archive");
        const h2 = await src.exact(BLOCK);
        if (h2 !== null && !isZeroBlock(h2)) throw invalidArgument("malformed tar archive: lone zero block");
        if (options.drainTrailing ?? true) await src.drain();
        return;
      }
      const header = decodeHeader(h, src.offset - BLOCK);
      if (header.meta !== undefined) {
        meta.checkSize(header);
        const data = await src.exact(paddedSize(header.size));
        if (data === null) throw dataLoss("truncated tar archive");
        // copy: the slice may alias a chunk that later reads reuse
        meta.absorb(header.meta, Buffer.from(data.subarray(0, header.size)));
        continue;
      }
      const flag = header.typeflag;
      const { name, linkname, size, pax, hasUstarFields } = meta.resolve(h, header);
      const paxUid = pax.get("uid");
      const paxGid = pax.get("gid");
      const paxMtime = pax.get("mtime");
      const uid = paxUid ? paxInt(paxUid, "uid", false) : parseNumeric(h, 108, 8, "uid");
      const gid = paxGid ? paxInt(paxGid, "gid", false) : parseNumeric(h, 116, 8, "gid");
      if (uid < 0 || gid < 0 || uid > 0xffffffff || gid > 0xffffffff)
        throw invalidArgument("tar uid/gid out of range");
      const mtime = paxMtime ? paxInt(paxMtime, "mtime", true) : parseNumeric(h, 136, 12, "mtime");
      const paxUname = pax.get("uname");
      const paxGname = pax.get("gname");

      let type = typeOf(flag);
      // pre-POSIX archives mark directories only by a trailing slash
      if (type === "file" && flag !== "7" && name.endsWith("/")) type = "dir";
      if (flag === "D") type = "dir"; // GNU dumpdir: a directory with a listing as body
      const isDevice = type === "char" || type === "block";

      const entry: TarEntry = {
        type,
        typeflag: flag,
        name,
        linkname,
        size,
        mode: parseNumeric(h, 100, 8, "mode") & 0o7777,
        uid,
        gid,
        uname: paxUname
          ? paxUname.toString("utf8")
          : hasUstarFields
            ? field(h, 265, 32).toString("utf8")
            : "",
        gname: paxGname
          ? paxGname.toString("utf8")
          : hasUstarFields
            ? field(h, 297, 32).toString("utf8")
            : "",
        mtime,
        devmajor: isDevice ? parseNumeric(h, 329, 8, "devmajor") : 0,
        devminor: isDevice ? parseNumeric(h, 337, 8, "devminor") : 0,
        xattrs: xattrsOf(pax),
        pax,
        body: emptyBody,
      };

      // Links, devices and directories carry no data even if a writer put a size in the header
      // (hardlinks in some writers do); POSIX says to read it anyway, so we skip it.
      let remaining = size;
      let started = false;
      entry.body = {
        [Symbol.asyncIterator]: async function* () {
          if (started) throw new Error("tar entry body can be read only once");
          started = true;
          if (entry.type !== "file") return;
          while (remaining > 0) {
            const c = await src.some(Math.min(remaining, 4 * MiB));
            remaining -= c.length;
            yield c;
          }
        },
      };
      yield entry;
      started = true;
      if (remaining > 0) await src.skip(remaining);
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad > 0) {
        const p = await src.exact(pad);
        if (p === null) throw dataLoss("truncated tar archive");
      }
    }
  }
}

const emptyBody: AsyncIterable<Buffer> = {
  [Symbol.asyncIterator]: async function* () {},
};
