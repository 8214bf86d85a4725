import { invalidArgument, notFound, permissionDenied } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { Repos } from "../metadata/metadata-store.js";
import { PROJECT_NAME_RE, type Project } from "../metadata/repos/project-repo.js";
import { PERMISSIONS, type Permission, type TokenRecord } from "../metadata/repos/token-repo.js";
import { allPermissions, issueToken } from "./tokens.js";

// The admin API validates against these in its request schemas (api/ may not import metadata values).
export { PERMISSIONS, PROJECT_NAME_RE };

/** Longest lifetime a token created through the API may get: ten years. */
export const MAX_TOKEN_LIFETIME_SECONDS = 10 * 365 * 86_400;

export interface TokenRequest {
  project: string;
  name: string;
  permissions: readonly Permission[];
  admin?: boolean;
  expiresInSeconds?: number;
}

export interface ListedToken {
  token: TokenRecord;
  project: string;
}

/** Projects and tokens for admin tokens: what `contree-server project|token` does, over HTTP. */
export interface AccessAdmin {
  projects(): Promise<Project[]>;
  createProject(name: string): Promise<Project>;
  /** Every token (revoked and expired ones too), or one project's. */
  tokens(project?: string): Promise<ListedToken[]>;
  /** A new token no more powerful than `caller`; its secret is returned here only. */
  issue(caller: TokenRecord, req: TokenRequest, now?: number): Promise<ListedToken & { secret: string }>;
  /** Revokes at once (authentication reads the row on every request); unknown id → 404. */
  revoke(id: string): Promise<void>;
}

/**
 * What `caller` may grant: a subset of its own permissions, admin only when asked for
 * explicitly (and only by an admin), and a lifetime that ends no later than its own.
 * Returns the stored form, or throws permission_denied / invalid_argument.
 */
export function grantFor(
  caller: TokenRecord,
  req: Pick<TokenRequest, "permissions" | "admin" | "expiresInSeconds">,
  now: number,
): { permissions: Record<Permission, boolean>; admin: boolean; expiresAt: number | null } {
  const permissions = allPermissions(false);
  for (const p of req.permissions) {
    if (!(PERMISSIONS as readonly string[]).includes(p))
      throw invalidArgument(`unknown permission ${JSON.stringify(String(p).slice(0, 64))}`);
    if (!caller.permissions[p]) throw permissionDenied(`cannot grant "${p}": the calling token lacks it`);
    permissions[p] = true;
  }
  const admin = req.admin === true;
  if (admin && !caller.admin) throw permissionDenied("only an admin token can create an admin token");
  const s = req.expiresInSeconds;
  if (s !== undefined && (!Number.isSafeInteger(s) || s < 1 || s > MAX_TOKEN_LIFETIME_SECONDS))
    throw invalidArgument(`expires_in_seconds must be an integer from 1 to ${MAX_TOKEN_LIFETIME_SECONDS}`);
  const expiresAt = s === undefined ? null : Math.floor(now / 1000) + s;
  if (caller.expiresAt !== null && (expiresAt === null || expiresAt > caller.expiresAt))
    throw permissionDenied(
      "a token cannot outlive the token creating it: give expires_in_seconds within the caller's own expiry",
    );
  return { permissions, admin, expiresAt };
}

export function accessAdmin(repos: Repos): AccessAdmin {
  const projectNames = async () => new Map((await repos.projects.list()).map((p) => [p.id, p.name]));
  const findProject = async (name: string) => {
    const p = PROJECT_NAME_RE.test(name) ? await repos.projects.findByName(name) : undefined;
    if (!p) throw notFound(`project ${JSON.stringify(name.slice(0, 64))} not found`);
    return p;
  };
  return {
    projects: () => repos.projects.list(),
    createProject: (name) => {
      if (!PROJECT_NAME_RE.test(name))
        return Promise.reject(invalidArgument("project name must match [a-z0-9][a-z0-9_.-]{0,62}"));
      return repos.projects.create(name);
    },
    async tokens(project) {
      const only = project === undefined ? undefined : await findProject(project);
      const names = await projectNames();
      return (await repos.tokens.list(only?.id)).map((token) => ({
        token,
        project: names.get(token.projectId) ?? token.projectId,
      }));
    },
    async issue(caller, req, now = Date.now()) {
      const grant = grantFor(caller, req, now);
      const p = await findProject(req.project);
      const issued = await issueToken(repos, { projectId: p.id, description: req.name, ...grant });
      return { token: issued.record, project: p.name, secret: issued.secret };
    },
    async revoke(id) {
      const lower = id.toLowerCase();
      if (!isUuid(lower)) throw notFound(`token ${JSON.stringify(id.slice(0, 64))} not found`);
      await repos.tokens.revoke(lower);
    },
  };
}

/** The admin endpoints' gate: admin tokens only (403 otherwise, whatever their permissions). */
export function requireAdmin(caller: TokenRecord, what: string): void {
  if (!caller.admin) throw permissionDenied(`${what} needs an admin token`);
}
