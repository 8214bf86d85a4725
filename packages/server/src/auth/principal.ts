import { permissionDenied, unauthenticated } from "../core/errors.js";
import type { Repos } from "../metadata/metadata-store.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { Permission, TokenRecord } from "../metadata/repos/token-repo.js";
import { hashToken } from "./tokens.js";

/** A token's `last_used_at` moves at most this often (one write per token per minute). */
const LAST_USED_GRANULARITY_MS = 60_000;

/** Who is calling and in which project; every resource lookup is scoped by `project.id`. */
export interface Principal {
  token: TokenRecord;
  project: Project;
}

/**
 * Resolves the bearer token and the optional `Project` header. The header may name a project
 * the token may use (its own; any for admin tokens); anything else is 403, so a token can never
 * reach another tenant's data.
 */
export async function authenticate(
  repos: Repos,
  authorization: string | undefined,
  projectHeader: string | undefined,
  now = Date.now(),
): Promise<Principal> {
  const m = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw unauthenticated("missing or malformed Authorization header (expected: Bearer <token>)");
  const token = await repos.tokens.findByHash(hashToken(m[1] as string));
  if (!token || token.revokedAt !== null) throw unauthenticated("invalid token");
  if (token.expiresAt !== null && token.expiresAt * 1000 <= now) throw unauthenticated("token expired");

  const home = await repos.projects.findById(token.projectId);
  if (!home) throw unauthenticated("invalid token");

  // Last use, to the minute, for the admin API; off the request's path, and a failure to record
  // it (the database busy or closing) is not worth failing the request for.
  if (token.lastUsedAt === null || token.lastUsedAt <= now - LAST_USED_GRANULARITY_MS)
    void repos.tokens.touch(token.id, now, LAST_USED_GRANULARITY_MS).catch(() => undefined);

  const wanted = projectHeader?.trim();
  if (wanted === undefined || wanted === "" || wanted === home.name || wanted === home.id) {
    return { token, project: home };
  }
  if (!token.admin)
    throw permissionDenied(`token may not use project ${JSON.stringify(wanted.slice(0, 64))}`);
  const other = (await repos.projects.findByName(wanted)) ?? (await repos.projects.findById(wanted));
  if (!other) throw permissionDenied(`token may not use project ${JSON.stringify(wanted.slice(0, 64))}`);
  return { token, project: other };
}

export function requirePermission(p: Principal, perm: Permission): void {
  if (!p.token.permissions[perm]) throw permissionDenied(`token lacks the "${perm}" permission`);
}
