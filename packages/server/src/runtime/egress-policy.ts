/**
 * A sandbox's egress rules: domains (exact `api.example.com`, or `*.example.com` for every name
 * below it) and IPv4 CIDRs (`203.0.113.0/24`, or one address). Semantics:
 *  - deny beats allow;
 *  - no allow list: every public destination except the denied ones (today's egress);
 *  - an allow list: only names and ranges on it;
 *  - the built-in refusal of private ranges and of the host (network.ts) holds either way.
 * Names are judged by the name the sandbox asked its resolver for; the addresses the answer
 * gave are what the firewall then lets through (egress-guard.ts).
 */
import { type Cidr, formatIp, inCidr, parseCidr, parseIp } from "../core/net-address.js";

export type EgressRule =
  | { kind: "name"; text: string; name: string }
  | { kind: "suffix"; text: string; suffix: string }
  | { kind: "cidr"; text: string; cidr: Cidr };

export interface EgressRules {
  allow?: string[];
  deny?: string[];
}

export const MAX_EGRESS_RULES = 256;
export const MAX_EGRESS_RULE_LENGTH = 253;

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A domain name in canonical form (lower case, no trailing dot), or undefined if not one. */
export function canonicalName(text: string): string | undefined {
  const name = text.toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split(".");
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  // An all-digit last label is an address written as a name: it must be given as a CIDR.
  if (/^[0-9]+$/.test(labels[labels.length - 1] as string)) return undefined;
  return name;
}

/** The rule a string stands for, or an error message naming what is wrong with it. */
export function parseEgressRule(text: string): EgressRule | string {
  if (text.length === 0 || text.length > MAX_EGRESS_RULE_LENGTH)
    return `must be 1 to ${MAX_EGRESS_RULE_LENGTH} characters`;
  if (/^[0-9./]+$/.test(text)) {
    const cidr = parseCidr(text.includes("/") ? text : `${text}/32`);
    if (cidr === undefined || cidr.bytes.length !== 4) return "is not an IPv4 address or CIDR";
    const base = parseIp(text.split("/")[0] as string) as Uint8Array;
    if (formatIp(maskedBase(cidr)) !== formatIp(base)) return "has bits set past its prefix length";
    return { kind: "cidr", text, cidr };
  }
  if (text.startsWith("*.")) {
    const suffix = canonicalName(text.slice(2));
    if (suffix === undefined || !suffix.includes(".")) return "is not a valid *.domain pattern";
    return { kind: "suffix", text, suffix };
  }
  if (text.includes("*")) return "may use * only as a leading `*.`";
  const name = canonicalName(text);
  if (name === undefined) return "is not a valid domain name, IPv4 address or CIDR";
  return { kind: "name", text, name };
}

/** The canonical spelling of a rule (lower-case names, CIDRs with their prefix). */
export function ruleText(r: EgressRule): string {
  if (r.kind === "name") return r.name;
  if (r.kind === "suffix") return `*.${r.suffix}`;
  return `${formatIp(r.cidr.bytes)}/${r.cidr.prefix}`;
}

function maskedBase(c: Cidr): Uint8Array {
  const out = Uint8Array.from(c.bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, c.prefix - i * 8));
    out[i] = (out[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

function nameMatches(rule: EgressRule, name: string): boolean {
  if (rule.kind === "name") return rule.name === name;
  if (rule.kind === "suffix") return name.endsWith(`.${rule.suffix}`);
  return false;
}

/** Does `outer` cover everything `inner` matches? */
export function covers(outer: EgressRule, inner: EgressRule): boolean {
  if (outer.kind === "cidr")
    return (
      inner.kind === "cidr" && outer.cidr.prefix <= inner.cidr.prefix && inCidr(inner.cidr.bytes, outer.cidr)
    );
  if (inner.kind === "cidr") return false;
  if (inner.kind === "name") return nameMatches(outer, inner.name);
  // A suffix rule is covered by the same suffix or one above it.
  return (
    outer.kind === "suffix" && (inner.suffix === outer.suffix || inner.suffix.endsWith(`.${outer.suffix}`))
  );
}

/**
 * A run's rules within its project's (both canonical): the run may narrow the project's allow
 * list (each of its allow rules must lie inside one of the project's) and add denials; the
 * project's denials always hold. Returns the rules in force, or the message of a 400.
 */
export function mergeEgress(
  project: EgressRules | undefined,
  run: EgressRules,
): EgressRules | { error: string } {
  let allow = project?.allow;
  if (run.allow !== undefined) {
    if (project?.allow !== undefined) {
      const outer = project.allow.map(parseEgressRule).filter((r): r is EgressRule => typeof r !== "string");
      for (const [i, text] of run.allow.entries()) {
        const rule = parseEgressRule(text);
        if (typeof rule === "string" || !outer.some((o) => covers(o, rule)))
          return {
            error: `networking.allow[${i}] ${JSON.stringify(text)} is outside the project's allow list`,
          };
      }
    }
    allow = run.allow;
  }
  const deny = [...new Set([...(project?.deny ?? []), ...(run.deny ?? [])])];
  return { ...(allow === undefined ? {} : { allow }), ...(deny.length === 0 ? {} : { deny }) };
}

export class EgressPolicy {
  private constructor(
    /** null: no allow list (public egress). */
    readonly allow: readonly EgressRule[] | null,
    readonly deny: readonly EgressRule[],
  ) {}

  /** Throws nothing: rules were validated by the route schema and normalizeSpawn. */
  static of(rules: EgressRules): EgressPolicy {
    const parse = (list: string[]) =>
      list.map(parseEgressRule).filter((r): r is EgressRule => typeof r !== "string");
    return new EgressPolicy(rules.allow === undefined ? null : parse(rules.allow), parse(rules.deny ?? []));
  }

  get rules(): EgressRules {
    return {
      ...(this.allow === null ? {} : { allow: this.allow.map((r) => r.text) }),
      deny: this.deny.map((r) => r.text),
    };
  }

  /** Whether the resolver answers for this (canonical) name. */
  allowsName(name: string): boolean {
    if (this.deny.some((r) => nameMatches(r, name))) return false;
    return this.allow === null || this.allow.some((r) => nameMatches(r, name));
  }

  /**
   * Whether a connection to `address`, asked for as `host` (a name, or the address itself), is
   * allowed, for a proxy that sees both (the secrets header proxy): deny beats allow.
   */
  allowsDestination(host: string, address: string): boolean {
    if (this.deniesAddress(address) || this.deny.some((r) => nameMatches(r, host))) return false;
    return (
      this.allow === null || this.allow.some((r) => nameMatches(r, host)) || this.allowsCidrAddress(address)
    );
  }

  /** Whether an address is on a CIDR rule of the deny list. */
  deniesAddress(ip: string): boolean {
    const b = parseIp(ip);
    return b !== undefined && this.deny.some((r) => r.kind === "cidr" && inCidr(b, r.cidr));
  }

  /** Whether an address is on a CIDR rule of the allow list. */
  allowsCidrAddress(ip: string): boolean {
    const b = parseIp(ip);
    return b !== undefined && (this.allow ?? []).some((r) => r.kind === "cidr" && inCidr(b, r.cidr));
  }

  cidrs(list: "allow" | "deny"): string[] {
    const rules = list === "allow" ? (this.allow ?? []) : this.deny;
    return rules.flatMap((r) =>
      r.kind === "cidr" ? [`${formatIp(maskedBase(r.cidr))}/${r.cidr.prefix}`] : [],
    );
  }
}
