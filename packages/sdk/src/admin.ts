// Projects and tokens for admin tokens (server extension `/v1/admin/*`): what `contree-server project`
// and `token` do on the server's data dir, over HTTP. Other tokens get a ForbiddenError from every call.

import type { ContreeApi } from "./api.js";
import { InvalidArgumentError } from "./errors.js";
import type { RequestOptions } from "./http.js";
import { printAs } from "./printable.js";
import type { AdminProject, AdminToken, CreatedToken, Permission } from "./types.js";

export interface CreateTokenOptions extends RequestOptions {
  project: string;
  name: string;
  /** Each must be one the calling token has; `[]` makes a token that can only call whoami. */
  permissions: Permission[];
  /** An admin token (never implied). */
  admin?: boolean;
  /** Lifetime in whole seconds; omitted: never expires (refused when the caller itself expires). */
  expiresInSec?: number;
}

export class Admin {
  readonly #api: ContreeApi;

  constructor(api: ContreeApi) {
    this.#api = api;
  }

  toJSON(): Record<string, never> {
    return {};
  }

  /** Every project with its limits in force and its storage usage. */
  async projects(opts?: RequestOptions): Promise<AdminProject[]> {
    return (await this.#api.listProjects(opts)).projects;
  }

  createProject(name: string, opts?: RequestOptions): Promise<AdminProject> {
    return this.#api.createProject(name, opts);
  }

  /** Every token (revoked and expired ones too), or one project's; never a secret. */
  async tokens(o: { project?: string } & RequestOptions = {}): Promise<AdminToken[]> {
    const { project, ...opts } = o;
    return (await this.#api.listTokens(project === undefined ? {} : { project }, opts)).tokens;
  }

  /** A new token; `token` on the result is its secret, shown this once. */
  createToken(o: CreateTokenOptions): Promise<CreatedToken> {
    const { project, name, permissions, admin, expiresInSec, ...opts } = o;
    if (expiresInSec !== undefined && (!Number.isSafeInteger(expiresInSec) || expiresInSec < 1))
      throw new InvalidArgumentError(`expiresInSec must be a positive whole number of seconds`);
    return this.#api.createToken(
      {
        project,
        name,
        permissions,
        ...(admin !== undefined ? { admin } : {}),
        ...(expiresInSec !== undefined ? { expires_in_seconds: expiresInSec } : {}),
      },
      opts,
    );
  }

  /** Revokes at once; revoking the client's own token is allowed (its next call is a 401). */
  revokeToken(id: string, opts?: RequestOptions): Promise<void> {
    return this.#api.revokeToken(id, opts);
  }
}

printAs(Admin, "Admin");
