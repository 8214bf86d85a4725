import "./admin.css";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { useConsole } from "../context.js";
import type { ViewProps } from "../routes.js";
import { type AdminProject, adminApi, isAdminToken, messageOf } from "./admin-api.js";
import { ProjectsPanel } from "./admin-projects.js";
import { StoragePanel } from "./admin-storage.js";
import { TokensPanel } from "./admin-tokens.js";

/**
 * Projects, tokens and storage for admin tokens. The nav shows it only to them; the server
 * refuses every admin call from other tokens anyway (403), which this view then says.
 */
export function AdminView(_props: ViewProps) {
  const { client, whoami } = useConsole();
  const api = useMemo(() => adminApi(client), [client]);
  const [projects, setProjects] = useState<AdminProject[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const admin = isAdminToken(whoami);

  const reload = useCallback(() => {
    api.projects().then(
      (p) => {
        setProjects(p);
        setError(undefined);
      },
      (e: unknown) => setError(messageOf(e)),
    );
  }, [api]);
  useEffect(() => {
    if (admin) reload();
  }, [admin, reload]);

  if (!admin)
    return (
      <section aria-labelledby="view-title">
        <h1 id="view-title">Admin</h1>
        <p role="alert" class="error">
          This needs an admin token: the token you signed in with is not one.
        </p>
      </section>
    );
  return (
    <section aria-labelledby="view-title" class="admin">
      <h1 id="view-title">Admin</h1>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <StoragePanel api={api} />
      <ProjectsPanel api={api} projects={projects} onChange={reload} />
      <TokensPanel api={api} projects={projects} whoami={whoami} />
    </section>
  );
}
