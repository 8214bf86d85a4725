import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueToken } from "../../src/auth/tokens.js";
import type { TestServer } from "./in-process.js";

/**
 * An ordinary (non-admin) token, and a fetch that uses it: in project `name` (created when
 * missing; "default" holds what the admin token imported).
 */
export async function tenant(
  t: TestServer,
  name = "default",
): Promise<{
  projectId: string;
  token: string;
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
}> {
  const project =
    (await t.server.store.projects.findByName(name)) ?? (await t.server.store.projects.create(name));
  const { secret } = await issueToken(t.server.store, { projectId: project.id });
  return {
    projectId: project.id,
    token: secret,
    api: (path, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set("authorization", `Bearer ${secret}`);
      return t.api(path, { ...init, headers });
    },
  };
}

/** Starts the server with `crun` hidden from PATH, so driver selection lands on runc. */
export async function withoutCrun<T>(fn: () => Promise<T>): Promise<T> {
  const shim = await mkdtemp(join(tmpdir(), "contree-no-crun-"));
  await writeFile(join(shim, "crun"), "#!/bin/sh\nexit 127\n");
  await chmod(join(shim, "crun"), 0o755);
  const path = process.env["PATH"];
  process.env["PATH"] = `${shim}:${path ?? ""}`;
  try {
    return await fn();
  } finally {
    process.env["PATH"] = path;
    await rm(shim, { recursive: true, force: true });
  }
}
