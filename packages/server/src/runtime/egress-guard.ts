/**
 * One policed sandbox's egress: its resolver (egress-resolver.ts) and its firewall
 * (egress-firewall.ts) under one policy, plus the reader that turns dropped flows into
 * denial reports. The object stays up for the sandbox's life; `stop()` removes all of it.
 *
 * It is also the hook for anything else that sends a sandbox's traffic on (an HTTP proxy at
 * the egress point): `allowsAddress(ip)` says whether the firewall would let a connection to
 * `ip` through, `namesOf(ip)` which allowed names the resolver gave it for.
 */

import {
  allowAddresses,
  type DeniedFlow,
  deniedFlows,
  installSandboxFirewall,
  removeSandboxFirewall,
} from "./egress-firewall.js";
import type { EgressPolicy } from "./egress-policy.js";
import { SandboxResolver } from "./egress-resolver.js";

/** What a denial report names. */
export interface EgressDenial {
  /** A domain name, or `address:port` for a connection. */
  destination: string;
  reason: "denied_name" | "private_answer" | "not_allowed" | "denied_address" | "other_resolver";
  protocol?: "tcp" | "udp";
  /** Names the resolver had given this address for (not_allowed after their TTL ran out). */
  names?: string[];
  /** private_answer: the addresses dropped from the answer. */
  addresses?: string[];
}

export interface EgressGuardOptions {
  vethHost: string;
  gateway: string;
  policy: EgressPolicy;
  upstream: string[];
  upstreamPort?: number;
  /** Blocked ranges the policy may still allow (network.ts `released`). */
  released?: string[];
  /** Addresses no sandbox may reach (the firewall's built-in list, less `released`). */
  blocked(ip: string): boolean;
  onDenied?: (d: EgressDenial) => void;
  /** How often dropped flows are read (ms). */
  pollMs?: number;
}

/** Distinct denials reported per sandbox; later ones are only counted (see `suppressed`). */
export const MAX_DENIAL_REPORTS = 100;

export class EgressGuard {
  private readonly resolver: SandboxResolver;
  private readonly reported = new Set<string>();
  private readonly names = new Map<string, { names: Set<string>; until: number }>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> = Promise.resolve();
  private stopped: Promise<void> | null = null;
  /** Denials past MAX_DENIAL_REPORTS (not reported one by one). */
  suppressed = 0;

  private constructor(private readonly o: EgressGuardOptions) {
    this.resolver = new SandboxResolver({
      host: o.gateway,
      upstream: o.upstream,
      ...(o.upstreamPort === undefined ? {} : { upstreamPort: o.upstreamPort }),
      allowsName: (n) => o.policy.allowsName(n),
      blocked: (ip) => o.blocked(ip),
      admit: (name, addresses, ttl) => this.admit(name, addresses, ttl),
      refuse: (r) =>
        this.report({
          destination: r.name,
          reason: r.reason,
          ...(r.addresses === undefined ? {} : { addresses: r.addresses }),
        }),
    });
  }

  static async start(o: EgressGuardOptions): Promise<EgressGuard> {
    const g = new EgressGuard(o);
    try {
      const ports = await g.resolver.listen();
      await installSandboxFirewall({
        vethHost: o.vethHost,
        gateway: o.gateway,
        allowCidrs: o.policy.allow === null ? null : o.policy.cidrs("allow"),
        denyCidrs: o.policy.cidrs("deny"),
        released: o.released ?? [],
        ...ports,
      });
    } catch (e) {
      await g.resolver.close();
      await removeSandboxFirewall(o.vethHost).catch(() => undefined);
      throw e;
    }
    g.timer = setInterval(() => g.poll(), o.pollMs ?? 1000);
    g.timer.unref();
    return g;
  }

  get policy(): EgressPolicy {
    return this.o.policy;
  }

  /** The resolver's address as the sandbox's resolv.conf names it. */
  get nameserver(): string {
    return this.o.gateway;
  }

  /** Would the firewall pass a new connection to `ip` now? */
  allowsAddress(ip: string): boolean {
    if (this.o.blocked(ip) || this.o.policy.deniesAddress(ip)) return false;
    if (this.o.policy.allow === null) return true;
    const e = this.names.get(ip);
    if (e !== undefined && e.until > Date.now()) return true;
    return this.o.policy.allowsCidrAddress(ip);
  }

  namesOf(ip: string): string[] {
    return [...(this.names.get(ip)?.names ?? [])];
  }

  /** Seconds the firewall keeps the addresses from now (what the sandbox may cache). */
  private async admit(name: string, addresses: string[], ttl: number): Promise<number> {
    const now = Date.now();
    // The set already holds them for at least half this TTL: no nft call (most repeat lookups).
    const left = Math.min(...addresses.map((a) => (this.names.get(a)?.until ?? 0) - now));
    const fresh = left >= (ttl * 1000) / 2;
    if (!fresh) await allowAddresses(this.o.vethHost, addresses, ttl);
    const until = fresh ? now : now + ttl * 1000;
    for (const a of addresses) {
      const e = this.names.get(a) ?? { names: new Set<string>(), until };
      // Bounded: one sandbox's names per address.
      if (e.names.size < 16) e.names.add(name);
      e.until = Math.max(e.until, until);
      this.names.set(a, e);
    }
    return fresh ? Math.floor(left / 1000) : ttl;
  }

  private report(d: EgressDenial): void {
    const key = `${d.reason} ${d.destination}`;
    if (this.reported.has(key)) return;
    if (this.reported.size >= MAX_DENIAL_REPORTS) {
      this.suppressed++;
      return;
    }
    this.reported.add(key);
    this.o.onDenied?.(d);
  }

  private flowDenial(f: DeniedFlow): EgressDenial {
    const reason =
      f.port === 53
        ? "other_resolver"
        : this.o.policy.deniesAddress(f.address)
          ? "denied_address"
          : "not_allowed";
    const names = this.namesOf(f.address);
    return {
      destination: `${f.address}:${f.port}`,
      reason,
      protocol: f.protocol,
      ...(names.length === 0 ? {} : { names }),
    };
  }

  /** Reads the dropped flows once (never two reads at a time). */
  poll(): Promise<void> {
    this.polling = this.polling.then(async () => {
      for (const f of await deniedFlows(this.o.vethHost).catch(() => [])) this.report(this.flowDenial(f));
    });
    return this.polling;
  }

  /** Reports the last drops, then removes the firewall entries and closes the resolver. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.timer !== null) clearInterval(this.timer);
      await this.poll();
      await this.resolver.close();
      await removeSandboxFirewall(this.o.vethHost);
    })();
    return this.stopped;
  }
}
