/**
 * Header substitution for runs that use a secret in header mode: the sandbox holds only a
 * placeholder (`contree-secret:NAME:<random>`), and its plain-HTTP traffic (TCP port 80) is
 * redirected (iptables DNAT on its veth, installed before its first process starts) to a
 * listener of this proxy bound to that sandbox's gateway address, one listener per run, so a
 * connection is attributed to its run by the socket it arrived on, never by what it claims.
 *
 * For each request the proxy takes the Host header's name, resolves it itself (the sandbox's
 * choice of IP plays no part: a placeholder sent to 1.2.3.4 with `Host: api.example.com` goes to
 * api.example.com's address or nowhere), checks the resolved address against the destination
 * policy (public addresses, plus what the operator lists, like imports), and forwards the
 * request to it on port 80. Only when the name matches a rule's host (exact, or `*.suffix`) is
 * the placeholder replaced by the value, and only inside that rule's header. Every other
 * request, to any host, is forwarded with its bytes as sent (a placeholder stays a
 * placeholder). Bodies stream both ways (no buffering); upgrades (WebSocket) and CONNECT are not
 * proxied (501).
 *
 * HTTPS (TCP port 443), when the server has an interception CA (proxy-ca.ts), is redirected the
 * same way to a TLS listener of the run's proxy: it presents a leaf for the name the client sent
 * (SNI; a client that sends none gets no certificate), requires the Host header to name the same
 * host (else 421), applies the same checks and substitution, and forwards over TLS to port 443 of
 * the resolved address, verifying the destination's certificate for that name against the system
 * CAs plus the operator's extra bundle. Every HTTPS connection of a header-mode run is intercepted,
 * not only a secret's host's (docs/secrets.md says why).
 */
import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import { createServer as createTlsServer, request as tlsRequest } from "node:https";
import { type AddressInfo, isIPv4, type Server, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { internal } from "../core/errors.js";
import type { DestinationPolicy } from "../registry/destination-policy.js";
import { runCommand } from "../sys/run-command.js";
import { type ProxyCa, SANDBOX_CIPHERS } from "./proxy-ca.js";

export interface HeaderRule {
  secret: string;
  /** Lowercase host name, or `*.suffix`. */
  host: string;
  /** Lowercase header name. */
  header: string;
  placeholder: string;
  value: string;
}

export interface ProxiedRun {
  opId: string;
  rules: readonly HeaderRule[];
  /** The run's egress policy (absent: none): a destination it refuses gets a 403, never a request. */
  allows?: (host: string, address: string) => boolean;
  /** Told once per secret and destination host, the first time the value is put in a request. */
  onUse(secret: string, host: string): void;
}

export interface SandboxNet {
  vethHost: string;
  address: string;
  gateway: string;
}

export interface AttachedProxy {
  /** Removes the redirect, closes the listener and its connections; idempotent. */
  detach(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "te",
  "trailer",
  "upgrade",
]);
const UPSTREAM_IDLE_MS = 60_000;

export function hostMatches(pattern: string, host: string): boolean {
  return pattern.startsWith("*.") ? host.endsWith(pattern.slice(1)) : host === pattern;
}

/** `Host` → the lowercase name without port or final dot; undefined when absent or malformed. */
export function hostOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^([A-Za-z0-9.-]+)(?::\d{1,5})?$/.exec(header.trim());
  const name = m?.[1]?.toLowerCase().replace(/\.$/, "");
  return name === undefined || name === "" ? undefined : name;
}

export class HeaderProxy {
  /** Names this server's iptables rules (one data dir, one tag), for start-up reclaim. */
  readonly #tag: string;

  constructor(
    private readonly o: {
      policy: DestinationPolicy;
      dataDir: string;
      logger: { warn(obj: object, msg: string): void };
      /** Name → IPv4 address (tests may pin names); default: the server's resolver. */
      resolve?: (host: string) => Promise<string>;
      /** Names answered without resolving (the operator's or a test's own names). */
      pins?: Readonly<Record<string, string>>;
      /** The interception CA; absent: HTTPS is not redirected (a placeholder in it stays one). */
      ca?: () => Promise<ProxyCa>;
      /** CAs (PEM) a destination's certificate must chain to: the system's plus the operator's. */
      upstreamCa?: readonly string[];
    },
  ) {
    this.#tag = `contree-secrets:${createHash("sha256").update(o.dataDir).digest("hex").slice(0, 12)}`;
  }

  /** Removes redirect rules a crashed run of this server (same data dir) left. */
  async reclaim(): Promise<number> {
    let removed = 0;
    for (const [table, chain] of [
      ["nat", "PREROUTING"],
      ["filter", "INPUT"],
    ] as const) {
      // No iptables (a host without egress networking): nothing can have been left.
      const r = await runCommand("iptables", ["-w", "-t", table, "-S", chain]).catch(() => undefined);
      if (r === undefined || r.code !== 0) continue;
      for (const line of r.stdout.split("\n")) {
        if (!line.startsWith(`-A ${chain} `) || !line.includes(this.#tag)) continue;
        const args = splitRule(line.slice(3));
        const d = await runCommand("iptables", ["-w", "-t", table, "-D", ...args]);
        if (d.code === 0) removed++;
      }
    }
    return removed;
  }

  /** Starts the run's listeners on its gateway and redirects the sandbox's ports 80 (and 443) to them. */
  async attach(run: ProxiedRun, net: SandboxNet): Promise<AttachedProxy> {
    const used = new Set<string>();
    const plain = createServer((req, res) => {
      void this.#forward(run, used, req, res, undefined);
    });
    const servers: Array<{ server: Server & { closeAllConnections?(): void }; dport: number }> = [
      { server: plain, dport: 80 },
    ];
    const ca = this.o.ca === undefined ? undefined : await this.o.ca();
    if (ca !== undefined) {
      const tls = createTlsServer(
        {
          ciphers: SANDBOX_CIPHERS,
          SNICallback: (name, cb) => {
            ca.contextFor(name.toLowerCase()).then(
              (ctx) => cb(null, ctx),
              (err: Error) => cb(err, undefined),
            );
          },
        },
        (req, res) => {
          const sni = (req.socket as TLSSocket).servername;
          void this.#forward(run, used, req, res, typeof sni === "string" ? sni.toLowerCase() : "");
        },
      );
      tls.on("tlsClientError", (_err, socket) => socket.destroy());
      servers.push({ server: tls, dport: 443 });
    }
    for (const { server } of servers) {
      // Only the sandbox (the redirect's source): a host process finding the port is turned away.
      server.on("connection", (socket: Socket) => {
        if (socket.remoteAddress !== net.address && socket.remoteAddress !== `::ffff:${net.address}`)
          socket.destroy();
      });
      server.on("connect", (_req, socket: Socket) => socket.destroy());
      server.on("upgrade", (_req, socket: Socket) => {
        socket.end("HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      });
      server.on("clientError", (_err, socket: Socket) => socket.destroy());
    }
    const comment = ["-m", "comment", "--comment", `${this.#tag}:${run.opId}`];
    const rules: Array<{ table: string; chain: string; spec: string[] }> = [];
    const installed: typeof rules = [];
    let detached: Promise<void> | undefined;
    const detach = () => {
      detached ??= (async () => {
        for (const r of installed.reverse())
          await runCommand("iptables", ["-w", "-t", r.table, "-D", r.chain, ...r.spec]);
        for (const { server } of servers) {
          server.closeAllConnections?.();
          if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      })();
      return detached;
    };
    try {
      for (const { server, dport } of servers) {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: net.gateway, port: 0 }, () => resolve());
        });
        const port = (server.address() as AddressInfo).port;
        // The accept first: once the redirect is in, the listener must already be reachable.
        rules.push(
          {
            table: "filter",
            chain: "INPUT",
            spec: [
              ...[
                "-i",
                net.vethHost,
                "-s",
                net.address,
                "-d",
                net.gateway,
                "-p",
                "tcp",
                "--dport",
                String(port),
              ],
              ...comment,
              ...["-j", "ACCEPT"],
            ],
          },
          {
            table: "nat",
            chain: "PREROUTING",
            spec: [
              ...["-i", net.vethHost, "-s", net.address, "-p", "tcp", "--dport", String(dport)],
              ...comment,
              ...["-j", "DNAT", "--to-destination", `${net.gateway}:${port}`],
            ],
          },
        );
      }
      for (const r of rules) {
        const res = await runCommand("iptables", ["-w", "-t", r.table, "-I", r.chain, "1", ...r.spec]);
        if (res.code !== 0)
          throw internal("secrets proxy redirect failed", { cause: new Error(res.stderr.trim()) });
        installed.push(r);
      }
    } catch (err) {
      await detach();
      throw err;
    }
    return { detach };
  }

  async #forward(
    run: ProxiedRun,
    used: Set<string>,
    req: IncomingMessage,
    res: ServerResponse,
    /** The TLS client's SNI name (HTTPS), or undefined for plain HTTP. */
    sni: string | undefined,
  ): Promise<void> {
    const fail = (status: number, text: string) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(status, { "content-type": "text/plain", connection: "close" }).end(`contree: ${text}\n`);
    };
    const host = hostOf(req.headers.host);
    if (host === undefined) return fail(400, "a request without a valid Host header is not forwarded");
    // The certificate the client accepted was for its SNI name: a Host naming another host would
    // get that host the request (and its secret) under a name the client never verified.
    if (sni !== undefined && sni.replace(/\.$/, "") !== host)
      return fail(421, `Host ${host} does not match the TLS server name`);
    const port = sni === undefined ? 80 : 443;
    let address: string;
    try {
      address =
        (this.o.pins !== undefined && Object.hasOwn(this.o.pins, host) ? this.o.pins[host] : undefined) ??
        (await (this.o.resolve ?? defaultResolve)(host));
    } catch {
      return fail(502, `${host} does not resolve`);
    }
    const verdict = this.o.policy.check({ hostname: host, port }, address);
    if (!verdict.allowed) return fail(403, `${host} is not a destination this server forwards to`);
    if (run.allows !== undefined && !run.allows(host, address))
      return fail(403, `${host} is not allowed by this run's egress policy`);
    const rules = run.rules.filter((r) => hostMatches(r.host, host));
    const headers: Record<string, string | string[]> = {};
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i] as string;
      let value = req.rawHeaders[i + 1] as string;
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      for (const r of rules) {
        if (r.header !== lower || !value.includes(r.placeholder)) continue;
        value = value.split(r.placeholder).join(r.value);
        const key = `${r.secret}\0${host}`;
        if (!used.has(key)) {
          used.add(key);
          run.onUse(r.secret, host);
        }
      }
      const prev = headers[name];
      headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
    const options = {
      host: address,
      port,
      method: req.method,
      path: req.url,
      headers,
      setHost: false,
      agent: false as const,
      timeout: UPSTREAM_IDLE_MS,
    };
    const up =
      sni === undefined
        ? request(options)
        : tlsRequest({
            ...options,
            // Verified for the name, against the system's and the operator's CAs only.
            ...(isIPv4(host) ? {} : { servername: host }),
            ...(this.o.upstreamCa === undefined ? {} : { ca: [...this.o.upstreamCa] }),
            rejectUnauthorized: true,
          });
    up.on("timeout", () => up.destroy(new Error("upstream idle")));
    up.on("error", (err: Error & { code?: string }) =>
      fail(
        502,
        /CERT|SELF_SIGNED|HOSTNAME|ALTNAME|ISSUER|SIGNATURE/.test(err.code ?? "")
          ? `${host} did not present a certificate that verifies`
          : `${host} could not be reached`,
      ),
    );
    up.on("response", (upRes) => {
      const out: string[] = [];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2)
        if (!HOP_BY_HOP.has((upRes.rawHeaders[i] as string).toLowerCase()))
          out.push(upRes.rawHeaders[i] as string, upRes.rawHeaders[i + 1] as string);
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      upRes.pipe(res);
      upRes.on("error", () => res.destroy());
    });
    req.on("error", () => up.destroy());
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }
}

async function defaultResolve(host: string): Promise<string> {
  return (await lookup(host, { family: 4 })).address;
}

/** `iptables -S` prints each argument shell-quoted only when it holds spaces (our comments do not). */
function splitRule(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? (m[2] as string));
}
