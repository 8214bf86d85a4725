/**
 * The undici dispatcher every registry request goes through. Its connector resolves the host
 * itself, asks the DestinationPolicy about every address, and connects to the address it
 * checked (TLS still verifies the certificate against the host name). There is no second,
 * separate resolution that DNS rebinding could answer differently.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Agent, buildConnector } from "undici";
import type { Destination, DestinationPolicy, Verdict } from "./destination-policy.js";

export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

/** Name → addresses. Injected by tests; the default is the system resolver (getaddrinfo). */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** A destination the policy refuses; to callers it looks like any other failed connection. */
export class DestinationRefused extends Error {
  readonly code = "EDESTREFUSED";
  constructor(
    readonly destination: Destination,
    readonly verdict: Exclude<Verdict, { allowed: true }>,
  ) {
    super("destination refused");
  }
}

export interface GuardedAgentOptions {
  readonly policy: DestinationPolicy;
  readonly resolver?: Resolver;
  readonly connectTimeoutMs?: number;
  /** Told of every refusal (for the operator's log; callers only ever see "unreachable"). */
  readonly onRefused?: (refused: DestinationRefused, address: string) => void;
}

/** Resolved addresses tried per connection. */
export const MAX_ADDRESSES = 4;

export function guardedAgent(o: GuardedAgentOptions): Agent {
  const resolver = o.resolver ?? systemResolver;
  const timeoutMs = o.connectTimeoutMs ?? 10_000;
  const base = buildConnector({ timeout: timeoutMs });
  const connect: buildConnector.connector = (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === "https:" ? 443 : 80);
    const to: Destination = { hostname: opts.hostname, port };
    void (async (): Promise<readonly ResolvedAddress[]> => {
      const family = isIP(opts.hostname);
      const found = family !== 0 ? [{ address: opts.hostname, family }] : await resolver(opts.hostname);
      if (found.length === 0) throw Object.assign(new Error("no address"), { code: "ENOTFOUND" });
      // Every address must pass, not just the one tried first: a name that mixes a public
      // address with a private one is refused as a whole.
      for (const a of found) {
        const verdict = o.policy.check(to, a.address);
        if (!verdict.allowed) {
          const refused = new DestinationRefused(to, verdict);
          o.onRefused?.(refused, a.address);
          throw refused;
        }
      }
      return found;
    })().then(
      (addresses) => {
        // Addresses are tried in the resolver's order until one connects: at most the first
        // MAX_ADDRESSES, and none started once the connect timeout is spent overall (undici
        // gives a connector no request signal, so a name with many black-holed addresses is
        // bounded here rather than costing a full timeout per address).
        const tries = Math.min(addresses.length, MAX_ADDRESSES);
        const giveUpAt = Date.now() + timeoutMs;
        const attempt = (i: number): void => {
          base({ ...opts, hostname: (addresses[i] as ResolvedAddress).address }, (err, socket) => {
            if (err !== null && i + 1 < tries && Date.now() < giveUpAt) attempt(i + 1);
            else if (err !== null) callback(err, null);
            else callback(null, socket as NonNullable<typeof socket>);
          });
        };
        attempt(0);
      },
      (err: Error) => callback(err, null),
    );
  };
  return new Agent({ connect });
}
