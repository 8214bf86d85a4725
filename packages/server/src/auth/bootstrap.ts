import type { MetadataStore } from "../metadata/metadata-store.js";
import { allPermissions, issueToken } from "./tokens.js";

export const DEFAULT_PROJECT = "default";
/** Project whose tags every project sees unless it has its own tag of the same name. */
export const PUBLIC_PROJECT = "public";

interface BootstrapResult {
  /** Set only on the very first start, when a token was created. */
  createdToken?: { secret: string; generated: boolean };
}

/**
 * First start on an empty data dir: creates the `default` and `public` projects and one admin
 * token (the given bootstrap secret, else a random one that is printed once). Idempotent.
 */
export async function bootstrap(
  store: MetadataStore,
  bootstrapSecret: string | undefined,
): Promise<BootstrapResult> {
  return store.transaction(async (tx) => {
    const def =
      (await tx.projects.findByName(DEFAULT_PROJECT)) ?? (await tx.projects.create(DEFAULT_PROJECT));
    if (!(await tx.projects.findByName(PUBLIC_PROJECT))) await tx.projects.create(PUBLIC_PROJECT);
    if ((await tx.tokens.count()) > 0) return {};
    const issued = await issueToken(tx, {
      projectId: def.id,
      admin: true,
      permissions: allPermissions(true),
      description: "bootstrap admin token",
      ...(bootstrapSecret === undefined ? {} : { secret: bootstrapSecret }),
    });
    return { createdToken: { secret: issued.secret, generated: bootstrapSecret === undefined } };
  });
}
