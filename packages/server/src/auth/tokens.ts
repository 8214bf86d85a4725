import { createHash, randomBytes } from "node:crypto";
import { invalidArgument } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { Repos } from "../metadata/metadata-store.js";
import {
  PERMISSIONS,
  type Permission,
  type Permissions,
  type TokenRecord,
} from "../metadata/repos/token-repo.js";

/** Tokens are stored only as SHA-256 hashes; the secret is shown once at creation. */
export function hashToken(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** 32 random bytes, URL-safe, with a recognisable prefix for secret scanners. */
function generateTokenSecret(): string {
  return `ctr_${randomBytes(32).toString("base64url")}`;
}

export function allPermissions(value = true): Permissions {
  return Object.fromEntries(PERMISSIONS.map((p) => [p, value])) as Permissions;
}

/** Parses "list,spawn,..." (or "all" / "none") into a full permission map. */
export function parsePermissions(spec: string | undefined): Permissions {
  if (spec === undefined || spec.trim() === "" || spec.trim() === "all") return allPermissions(true);
  const perms = allPermissions(false);
  if (spec.trim() === "none") return perms;
  for (const raw of spec.split(",")) {
    const p = raw.trim();
    if (!(PERMISSIONS as readonly string[]).includes(p)) {
      throw invalidArgument(`unknown permission ${JSON.stringify(p)}; known: ${PERMISSIONS.join(", ")}`);
    }
    perms[p as Permission] = true;
  }
  return perms;
}

interface IssuedToken {
  record: TokenRecord;
  secret: string;
}

export async function issueToken(
  repos: Repos,
  o: {
    projectId: string;
    admin?: boolean;
    permissions?: Permissions;
    description?: string;
    expiresAt?: number | null;
    secret?: string;
  },
): Promise<IssuedToken> {
  const secret = o.secret ?? generateTokenSecret();
  const record = await repos.tokens.insert({
    id: newId(),
    projectId: o.projectId,
    hash: hashToken(secret),
    admin: o.admin ?? false,
    permissions: o.permissions ?? allPermissions(true),
    description: o.description ?? "",
    expiresAt: o.expiresAt ?? null,
  });
  return { record, secret };
}
