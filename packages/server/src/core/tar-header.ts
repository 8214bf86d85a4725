/**
 * The one tar header codec: what a 512-byte header block and the metadata entries before a
 * member (PAX `x`/`g`, GNU long name `L` / long link `K`) mean. Both tar users go through it —
 * the streaming layer reader (layers/tar-reader.ts) and the random-access archive index
 * (registry/tar-index.ts) — so a hostile archive cannot read one way to one and another way to
 * the other. It lives in core/ because both users are backends of different subsystems and
 * neither may import the other; it does no I/O.
 *
 * Accepted: ustar/v7/GNU headers, checksums summed as unsigned or signed bytes (GNU tar accepts
 * either, old Sun and some Go writers sum signed), octal or base-256 numbers, PAX records as raw
 * bytes. Rejected (`invalid_argument`): a bad checksum, a malformed PAX record (length not a
 * decimal, past the header's data or not ending in a newline, no key, a non-UTF-8 key), a
 * non-UTF-8 or NUL-holding name, two PAX headers for one member, a metadata header that
 * describes no member, sparse and multi-volume members.
 */
import { invalidArgument } from "./errors.js";

export const TAR_BLOCK = 512;

const ZERO_BLOCK = Buffer.alloc(TAR_BLOCK);

export function isZeroBlock(h: Buffer): boolean {
  return h.equals(ZERO_BLOCK);
}

/** Bytes a member's data takes in the archive, padded to whole blocks. */
export function paddedSize(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeName(b: Buffer, what: string): string {
  let s: string;
  try {
    s = utf8.decode(b);
  } catch {
    throw invalidArgument(`tar ${what} is not valid UTF-8`);
  }
  if (s.includes("\0")) throw invalidArgument(`tar ${what} contains a NUL byte`);
  return s;
}

/** NUL-terminated field. */
export function field(h: Buffer, off: number, len: number): Buffer {
  const end = h.indexOf(0, off);
  return h.subarray(off, end < 0 || end > off + len ? off + len : end);
}

/** Octal (space/NUL padded) or base-256 (GNU/star, high bit of first byte set) numeric field. */
export function parseNumeric(h: Buffer, off: number, len: number, what: string): number {
  const b0 = h[off] ?? 0;
  if (b0 & 0x80) {
    // base-256 two's complement; 0xff lead byte = negative
    const negative = b0 === 0xff;
    let v = BigInt(b0 & 0x7f) - (negative ? 0x80n : 0n);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(h[off + i] ?? 0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw invalidArgument(`tar header field ${what} out of range`);
    }
    return Number(v);
  }
  let i = off;
  const end = off + len;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = h[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw invalidArgument(`tar header field ${what} is not an octal number`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    const c = h[i] ?? 0;
    if (c !== 0 && c !== 0x20) throw invalidArgument(`tar header field ${what} is not an octal number`);
  }
  return digits === 0 ? 0 : v;
}

/** The stored checksum equals the unsigned or the signed byte sum (chksum field read as spaces). */
export function checksumOk(h: Buffer): boolean {
  let stored: number;
  try {
    stored = parseNumeric(h, 148, 8, "chksum");
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** PAX records "LEN KEY=VALUE\n"; values stay raw bytes. An empty value means "unset". */
export function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let o = 0;
  while (o < buf.length) {
    // a writer may pad the data with NULs
    if (buf[o] === 0) {
      for (let i = o; i < buf.length; i++) if (buf[i] !== 0) throw invalidArgument("malformed PAX header");
      break;
    }
    const sp = buf.indexOf(0x20, o);
    if (sp < 0 || sp - o > 10) throw invalidArgument("malformed PAX header: bad record length");
    const lenStr = buf.toString("latin1", o, sp);
    if (!/^[1-9][0-9]*$/.test(lenStr)) throw invalidArgument("malformed PAX header: bad record length");
    const recEnd = o + Number(lenStr);
    if (recEnd > buf.length || recEnd <= sp + 1 || buf[recEnd - 1] !== 0x0a) {
      throw invalidArgument("malformed PAX header: bad record length");
    }
    const rec = buf.subarray(sp + 1, recEnd - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw invalidArgument("malformed PAX header: record without key");
    out.set(decodeName(rec.subarray(0, eq), "PAX key"), rec.subarray(eq + 1));
    o = recEnd;
  }
  return out;
}

/** A decimal PAX value (size, uid, gid; mtime may carry a fraction and a sign). */
export function paxInt(v: Buffer, key: string, allowFraction: boolean): number {
  const s = v.toString("latin1");
  const re = allowFraction ? /^-?[0-9]{1,16}(\.[0-9]{1,9})?$/ : /^[0-9]{1,16}$/;
  if (!re.test(s)) throw invalidArgument(`malformed PAX ${key}`);
  const n = Number(s);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER)
    throw invalidArgument(`PAX ${key} out of range`);
  return n;
}

type MetaFlag = "x" | "g" | "L" | "K";

/** What one header block says before metadata entries are applied. */
interface TarHeader {
  readonly typeflag: string;
  /** The size field: for a metadata entry, the size of its data. */
  readonly size: number;
  /** Set for PAX and GNU long name/link headers: their data is read and handed to `TarMeta.absorb`. */
  readonly meta: MetaFlag | undefined;
}

/**
 * Checks and decodes the parts of a (non-zero) header block every reader needs. `offset` only
 * goes into the message.
 */
export function decodeHeader(h: Buffer, offset: number): TarHeader {
  if (!checksumOk(h)) throw invalidArgument(`tar header checksum mismatch at offset ${offset}`);
  const typeflag = String.fromCharCode(h[156] ?? 0);
  if (typeflag === "S" || typeflag === "M")
    throw invalidArgument("sparse and multi-volume tar entries are not supported");
  const size = parseNumeric(h, 124, 12, "size");
  if (size < 0) throw invalidArgument("negative tar entry size");
  const meta =
    typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K" ? typeflag : undefined;
  return { typeflag, size, meta };
}

interface TarMetaLimits {
  /** Largest PAX header (x or g) accepted. */
  readonly maxPaxBytes: number;
  /** Largest GNU long name / long link. */
  readonly maxLongNameBytes: number;
}

/** Global PAX records in force at once (real archives carry a handful: a comment, a mtime). */
const MAX_GLOBAL_PAX_RECORDS = 256;

export const DEFAULT_META_LIMITS: TarMetaLimits = { maxPaxBytes: 1024 * 1024, maxLongNameBytes: 64 * 1024 };

/** A member's header with the metadata entries before it applied. */
interface ResolvedHeader {
  /** As stored (PAX/GNU overrides applied), not normalised. */
  readonly name: string;
  readonly linkname: string;
  /** Bytes of data that follow the header in the archive (PAX `size` wins over the field). */
  readonly size: number;
  /** "ustar\0" (POSIX) or "ustar " (GNU) magic: uname/gname fields are meaningful. */
  readonly hasUstarFields: boolean;
  /** All PAX records in effect (global merged with local), raw values. */
  readonly pax: ReadonlyMap<string, Buffer>;
}

/** The state metadata entries carry to the member they describe; one per archive. */
export class TarMeta {
  #global = new Map<string, Buffer>();
  #local: Map<string, Buffer> | null = null;
  #longName: string | null = null;
  #longLink: string | null = null;

  constructor(private readonly limits: TarMetaLimits = DEFAULT_META_LIMITS) {}

  /** A metadata entry waits for its member: the archive must not end here. */
  get pending(): boolean {
    return this.#local !== null || this.#longName !== null || this.#longLink !== null;
  }

  /** Refuses a metadata entry's data before it is read when it is too large. */
  checkSize(header: TarHeader): void {
    const long = header.meta === "L" || header.meta === "K";
    const limit = long ? this.limits.maxLongNameBytes : this.limits.maxPaxBytes;
    const what = header.meta === "L" ? "long name" : header.meta === "K" ? "long link" : "PAX header";
    if (header.size > limit)
      throw invalidArgument(`tar ${what} too large (${header.size} bytes, limit ${limit})`);
  }

  /** Applies a metadata entry's data (exactly `size` bytes). */
  absorb(flag: MetaFlag, data: Buffer): void {
    if (flag === "L" || flag === "K") {
      const s = decodeName(field(data, 0, data.length), flag === "L" ? "long name" : "long link");
      if (flag === "L") this.#longName = s;
      else this.#longLink = s;
      return;
    }
    const recs = parsePax(data);
    if (flag === "g") {
      const g = new Map(this.#global);
      let bytes = 0;
      for (const [k, v] of recs) {
        if (v.length === 0) g.delete(k);
        else g.set(k, v);
      }
      for (const [k, v] of g) bytes += k.length + v.length;
      // Global records apply to every later member: bounded as a whole, or many `g` headers (or
      // one with thousands of tiny records) would cost every member of a huge archive.
      if (g.size > MAX_GLOBAL_PAX_RECORDS || bytes > this.limits.maxPaxBytes)
        throw invalidArgument(
          `tar global PAX headers too large (${g.size} records, ${bytes} bytes; limit ${MAX_GLOBAL_PAX_RECORDS} records, ${this.limits.maxPaxBytes} bytes)`,
        );
      this.#global = g;
      return;
    }
    if (this.#local !== null) throw invalidArgument("two PAX headers for one tar entry");
    this.#local = recs;
  }

  /** The member header `h` (size field already decoded into `header`) with metadata applied. */
  resolve(h: Buffer, header: TarHeader): ResolvedHeader {
    const magic = h.toString("latin1", 257, 263);
    const isPosix = magic === "ustar\0";
    // #global is replaced, never changed, so a member without local records can share it.
    const pax = this.#local ? new Map(this.#global) : this.#global;
    if (this.#local) {
      for (const [k, v] of this.#local) {
        if (v.length === 0) pax.delete(k);
        else pax.set(k, v);
      }
    }
    for (const k of pax.keys()) {
      if (k.startsWith("GNU.sparse.")) throw invalidArgument("sparse tar entries are not supported");
    }
    let name: string;
    const paxPath = pax.get("path");
    if (paxPath) name = decodeName(paxPath, "name");
    else if (this.#longName !== null) name = this.#longName;
    else {
      const base = decodeName(field(h, 0, 100), "name");
      const prefix = isPosix ? decodeName(field(h, 345, 155), "name") : "";
      name = prefix ? `${prefix}/${base}` : base;
    }
    let linkname: string;
    const paxLink = pax.get("linkpath");
    if (paxLink) linkname = decodeName(paxLink, "link name");
    else if (this.#longLink !== null) linkname = this.#longLink;
    else linkname = decodeName(field(h, 157, 100), "link name");
    const paxSize = pax.get("size");
    const size = paxSize ? paxInt(paxSize, "size", false) : header.size;
    this.#local = null;
    this.#longName = null;
    this.#longLink = null;
    return { name, linkname, size, hasUstarFields: isPosix || magic === "ustar ", pax };
  }
}
