/**
 * The little of the DNS wire format (RFC 1035) the sandbox resolver needs: read a query's one
 * question, read an answer's records (names may be compressed), and write a response of our own
 * (names uncompressed). Every length and pointer is checked: the input is hostile.
 */

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;
export const RCODE_NOERROR = 0;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_REFUSED = 5;

export interface DnsQuestion {
  /** Lower case, no trailing dot ("" for the root). */
  name: string;
  type: number;
  cls: number;
}

export interface DnsQuery {
  id: number;
  /** The RD bit, echoed in the response. */
  recursionDesired: boolean;
  opcode: number;
  question: DnsQuestion;
}

export interface DnsRecord {
  name: string;
  type: number;
  cls: number;
  ttl: number;
  /** Dotted quad for A records, the target for CNAME records. */
  value?: string;
}

export interface DnsResponse {
  id: number;
  truncated: boolean;
  rcode: number;
  question: DnsQuestion | null;
  answers: DnsRecord[];
}

class Malformed extends Error {}

function u16(b: Buffer, off: number): number {
  if (off + 2 > b.length) throw new Malformed();
  return b.readUInt16BE(off);
}

/** A (possibly compressed) name at `off`; `next` is the offset after it in the original place. */
function readName(b: Buffer, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let off = start;
  let next = -1;
  let total = 0;
  for (let jumps = 0; jumps < 64; ) {
    if (off >= b.length) throw new Malformed();
    const len = b[off] as number;
    if (len === 0) {
      if (next < 0) next = off + 1;
      return { name: labels.join(".").toLowerCase(), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (next < 0) next = off + 2;
      off = u16(b, off) & 0x3fff;
      jumps++;
      continue;
    }
    if (len > 63 || off + 1 + len > b.length) throw new Malformed();
    total += len + 1;
    if (total > 255) throw new Malformed();
    labels.push(b.toString("latin1", off + 1, off + 1 + len));
    off += 1 + len;
  }
  throw new Malformed();
}

function readQuestion(b: Buffer, off: number): { q: DnsQuestion; next: number } {
  const { name, next } = readName(b, off);
  return { q: { name, type: u16(b, next), cls: u16(b, next + 2) }, next: next + 4 };
}

/** The query's header and its one question, or null when it is not a well-formed single-question query. */
export function parseQuery(b: Buffer): DnsQuery | null {
  try {
    if (b.length < 12 || b.length > 65535) return null;
    const flags = u16(b, 2);
    if (flags & 0x8000) return null;
    if (u16(b, 4) !== 1) return null;
    const { q } = readQuestion(b, 12);
    return {
      id: u16(b, 0),
      recursionDesired: (flags & 0x0100) !== 0,
      opcode: (flags >> 11) & 0xf,
      question: q,
    };
  } catch {
    return null;
  }
}

/** An upstream response's question and answer records, or null when malformed. */
export function parseResponse(b: Buffer): DnsResponse | null {
  try {
    if (b.length < 12) return null;
    const flags = u16(b, 2);
    if ((flags & 0x8000) === 0) return null;
    const qd = u16(b, 4);
    const an = u16(b, 6);
    let off = 12;
    let question: DnsQuestion | null = null;
    for (let i = 0; i < qd; i++) {
      const r = readQuestion(b, off);
      question ??= r.q;
      off = r.next;
    }
    const answers: DnsRecord[] = [];
    for (let i = 0; i < an; i++) {
      const { name, next } = readName(b, off);
      const type = u16(b, next);
      const cls = u16(b, next + 2);
      if (next + 10 > b.length) throw new Malformed();
      const ttl = b.readUInt32BE(next + 4);
      const rdlen = u16(b, next + 8);
      const rdata = next + 10;
      if (rdata + rdlen > b.length) throw new Malformed();
      const rec: DnsRecord = { name, type, cls, ttl };
      if (type === TYPE_A && rdlen === 4) rec.value = [...b.subarray(rdata, rdata + 4)].join(".");
      else if (type === TYPE_CNAME) rec.value = readName(b, rdata).name;
      answers.push(rec);
      off = rdata + rdlen;
    }
    return { id: u16(b, 0), truncated: (flags & 0x0200) !== 0, rcode: flags & 0xf, question, answers };
  } catch {
    return null;
  }
}

function encodeName(name: string): Buffer {
  const parts = name === "" ? [] : name.split(".");
  return Buffer.concat([
    ...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")])),
    Buffer.from([0]),
  ]);
}

function questionBytes(q: DnsQuestion): Buffer {
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(q.type, 0);
  tail.writeUInt16BE(q.cls, 2);
  return Buffer.concat([encodeName(q.name), tail]);
}

/** A query for `q` (to an upstream server). */
export function buildQuery(id: number, q: DnsQuestion): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, questionBytes(q)]);
}

/** Our response to `query`: the given rcode and A/CNAME answers, no other sections. */
export function buildResponse(query: DnsQuery, rcode: number, answers: DnsRecord[]): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(query.id, 0);
  h.writeUInt16BE(0x8000 | (query.opcode << 11) | (query.recursionDesired ? 0x0100 : 0) | 0x0080 | rcode, 2);
  h.writeUInt16BE(1, 4);
  const records: Buffer[] = [];
  for (const a of answers) {
    let rdata: Buffer;
    if (a.type === TYPE_A && a.value !== undefined) rdata = Buffer.from(a.value.split(".").map(Number));
    else if (a.type === TYPE_CNAME && a.value !== undefined) rdata = encodeName(a.value);
    else continue;
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(a.type, 0);
    fixed.writeUInt16BE(a.cls, 2);
    fixed.writeUInt32BE(a.ttl, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    records.push(encodeName(a.name), fixed, rdata);
  }
  h.writeUInt16BE(records.length / 3, 6);
  return Buffer.concat([h, questionBytes(query.question), ...records]);
}
