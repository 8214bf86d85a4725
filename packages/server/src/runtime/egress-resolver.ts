/**
 * The DNS resolver one policed sandbox talks to (UDP and TCP, on its gateway address; the
 * firewall redirects the sandbox's port 53 there). It answers only for names the policy allows,
 * asking the upstream resolvers itself; it keeps A records outside blocked ranges (DNS
 * rebinding), hands their addresses to `admit` (the firewall's allow-set) before the sandbox
 * sees the answer, and tells `refuse` about what it turned down. AAAA questions get no
 * addresses (IPv6 is dropped for sandboxes anyway).
 */
import { randomInt } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, type Server, type Socket } from "node:net";
import {
  buildQuery,
  buildResponse,
  type DnsQuery,
  type DnsRecord,
  parseQuery,
  parseResponse,
  RCODE_NOERROR,
  RCODE_NXDOMAIN,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  TYPE_A,
  TYPE_AAAA,
  TYPE_CNAME,
} from "./dns-message.js";
import { canonicalName } from "./egress-policy.js";

const UPSTREAM_TIMEOUT_MS = 2000;
const MAX_IN_FLIGHT = 64;
const MAX_TCP_CONNECTIONS = 16;
const TCP_IDLE_MS = 10_000;
/** An allowed address stays in the set at least this long, whatever the record's TTL. */
export const MIN_ALLOW_TTL = 30;
const MAX_ALLOW_TTL = 86_400;

export interface ResolverRefusal {
  name: string;
  reason: "denied_name" | "private_answer";
  /** For private_answer: the addresses dropped from the answer. */
  addresses?: string[];
}

export interface ResolverOptions {
  /** Address to listen on (the sandbox's gateway). */
  host: string;
  upstream: string[];
  /** Upstream port (53; tests may use another). */
  upstreamPort?: number;
  allowsName(name: string): boolean;
  /** True for addresses no sandbox may reach (private ranges, the host's networks). */
  blocked(ip: string): boolean;
  /**
   * Lets the sandbox reach these addresses; resolves once the firewall has them, to the seconds
   * it keeps them (at most `ttlSeconds`).
   */
  admit(name: string, addresses: string[], ttlSeconds: number): Promise<number>;
  refuse(r: ResolverRefusal): void;
}

export class SandboxResolver {
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  private inFlight = 0;
  private readonly conns = new Set<Socket>();
  private closed = false;

  constructor(private readonly o: ResolverOptions) {}

  /** Binds the UDP and TCP sockets (ephemeral ports); returns them. */
  async listen(): Promise<{ udpPort: number; tcpPort: number }> {
    const udp = createSocket("udp4");
    this.udp = udp;
    udp.on("error", () => undefined);
    await new Promise<void>((res, rej) => {
      udp.once("error", rej);
      udp.bind({ address: this.o.host, port: 0 }, () => {
        udp.off("error", rej);
        res();
      });
    });
    udp.on("message", (msg, rinfo) => {
      void this.answer(msg).then((reply) => {
        if (reply !== null && !this.closed) udp.send(reply, rinfo.port, rinfo.address, () => undefined);
      });
    });
    const tcp = createServer((s) => this.serveTcp(s));
    this.tcp = tcp;
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    await new Promise<void>((res, rej) => {
      tcp.once("error", rej);
      tcp.listen({ host: this.o.host, port: 0 }, () => {
        tcp.off("error", rej);
        res();
      });
    });
    const tcpAddr = tcp.address();
    const tcpPort = typeof tcpAddr === "object" && tcpAddr !== null ? tcpAddr.port : 0;
    return { udpPort: udp.address().port, tcpPort };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.conns) c.destroy();
    await Promise.all([
      new Promise<void>((res) => (this.udp === null ? res() : this.udp.close(() => res()))),
      new Promise<void>((res) => (this.tcp === null ? res() : this.tcp.close(() => res()))),
    ]);
  }

  private serveTcp(s: Socket): void {
    this.conns.add(s);
    s.setTimeout(TCP_IDLE_MS, () => s.destroy());
    s.on("error", () => undefined);
    s.on("close", () => this.conns.delete(s));
    let buf = Buffer.alloc(0);
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void this.answer(msg).then((reply) => {
          if (reply === null || s.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(reply.length);
          s.write(Buffer.concat([head, reply]));
        });
      }
      if (buf.length > 2 + 65535) s.destroy();
    });
  }

  /** The reply to one message from the sandbox (null: none, e.g. not a query). */
  async answer(msg: Buffer): Promise<Buffer | null> {
    const q = parseQuery(msg);
    if (q === null) return null;
    if (this.inFlight >= MAX_IN_FLIGHT) return buildResponse(q, RCODE_SERVFAIL, []);
    this.inFlight++;
    try {
      return await this.resolve(q);
    } catch {
      return buildResponse(q, RCODE_SERVFAIL, []);
    } finally {
      this.inFlight--;
    }
  }

  private async resolve(q: DnsQuery): Promise<Buffer> {
    if (q.opcode !== 0 || q.question.cls !== 1) return buildResponse(q, RCODE_REFUSED, []);
    const name = canonicalName(q.question.name);
    if (name === undefined || !this.o.allowsName(name)) {
      this.o.refuse({ name: name ?? q.question.name.slice(0, 253), reason: "denied_name" });
      return buildResponse(q, RCODE_NXDOMAIN, []);
    }
    // Addresses come only from A questions; other types get no records (nothing else is needed
    // to connect, and e.g. an SVCB ipv4hint would only point at an address the firewall drops).
    const type = q.question.type === TYPE_A ? TYPE_A : TYPE_AAAA;
    const raw = await this.upstream(buildQuery(randomInt(0, 65536), { name, type, cls: 1 }));
    const res = raw === null ? null : parseResponse(raw);
    if (res === null) return buildResponse(q, RCODE_SERVFAIL, []);
    if (res.rcode !== RCODE_NOERROR)
      return buildResponse(q, res.rcode === RCODE_NXDOMAIN ? RCODE_NXDOMAIN : RCODE_SERVFAIL, []);
    const cnames = res.answers.filter((r) => r.type === TYPE_CNAME);
    if (q.question.type !== TYPE_A)
      return buildResponse(
        q,
        RCODE_NOERROR,
        cnames.map((r) => ({ ...r, cls: 1 })),
      );
    const a = res.answers.filter((r) => r.type === TYPE_A && r.value !== undefined);
    const dropped = a.filter((r) => this.o.blocked(r.value as string));
    const kept = a.filter((r) => !this.o.blocked(r.value as string));
    if (dropped.length > 0)
      this.o.refuse({ name, reason: "private_answer", addresses: dropped.map((r) => r.value as string) });
    if (kept.length === 0) return buildResponse(q, dropped.length > 0 ? RCODE_NXDOMAIN : RCODE_NOERROR, []);
    const ttl = Math.min(MAX_ALLOW_TTL, Math.max(MIN_ALLOW_TTL, ...kept.map((r) => r.ttl)));
    const keptFor = await this.o.admit(name, [...new Set(kept.map((r) => r.value as string))], ttl);
    // The sandbox caches no longer than the firewall keeps the addresses.
    const answers: DnsRecord[] = [...cnames, ...kept].map((r) => ({
      ...r,
      cls: 1,
      ttl: Math.min(r.ttl, keptFor),
    }));
    // The owner of the first record is the name asked (the upstream's may differ in case).
    return buildResponse({ ...q, question: { ...q.question, name } }, RCODE_NOERROR, answers);
  }

  /** The first upstream answer to `query` (UDP, then TCP when truncated); null when none answered. */
  private async upstream(query: Buffer): Promise<Buffer | null> {
    const port = this.o.upstreamPort ?? 53;
    for (const server of this.o.upstream) {
      const udp = await udpExchange(server, port, query).catch(() => null);
      if (udp === null) continue;
      if ((udp.readUInt16BE(2) & 0x0200) === 0) return udp;
      const tcp = await tcpExchange(server, port, query).catch(() => null);
      if (tcp !== null) return tcp;
    }
    return null;
  }
}

function sameId(a: Buffer, b: Buffer): boolean {
  return a.length >= 12 && a.readUInt16BE(0) === b.readUInt16BE(0);
}

function udpExchange(server: string, port: number, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    const done = (err: Error | null, msg?: Buffer) => {
      clearTimeout(timer);
      s.close();
      if (err !== null || msg === undefined) reject(err ?? new Error("no answer"));
      else resolve(msg);
    };
    const timer = setTimeout(() => done(new Error("timeout")), UPSTREAM_TIMEOUT_MS);
    s.on("error", (e) => done(e));
    s.on("message", (msg, rinfo) => {
      if (rinfo.address === server && rinfo.port === port && sameId(msg, query)) done(null, msg);
    });
    s.send(query, port, server);
  });
}

function tcpExchange(server: string, port: number, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: server, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => s.destroy(new Error("timeout")), UPSTREAM_TIMEOUT_MS);
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("connect", () => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(query.length);
      s.write(Buffer.concat([head, query]));
    });
    s.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        s.destroy();
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        if (sameId(msg, query)) resolve(msg);
        else reject(new Error("mismatched answer"));
      }
    });
    s.on("close", () => {
      clearTimeout(timer);
      reject(new Error("closed"));
    });
  });
}
