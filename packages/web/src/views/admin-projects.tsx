import { useState } from "preact/hooks";
import { type AdminApi, type AdminProject, bytes, messageOf, when } from "./admin-api.js";

/** Limits worth a column; the rest are in each row's details. */
const SHOWN_LIMITS: readonly [string, string][] = [
  ["instance_max_concurrency", "runs at once"],
  ["instance_max_timeout", "run timeout (s)"],
  ["images_ttl_seconds", "image TTL (s)"],
];

function Quota({ p }: { p: AdminProject }) {
  const u = p.usage;
  if (u === undefined) return <span class="muted">—</span>;
  if (u.storage_max_bytes === null) return <span>{bytes(u.charged_bytes)}</span>;
  const pct = Math.min(100, Math.round((u.charged_bytes / Math.max(1, u.storage_max_bytes)) * 100));
  return (
    <span>
      {bytes(u.charged_bytes)} of {bytes(u.storage_max_bytes)}{" "}
      <meter min={0} max={100} value={pct} high={90} aria-label={`${p.name} storage used, percent`} />
    </span>
  );
}

export function ProjectsPanel(props: {
  api: AdminApi;
  projects: AdminProject[] | undefined;
  onChange(): void;
}) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await props.api.createProject(name.trim());
      setName("");
      setError(undefined);
      props.onChange();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="admin-projects" class="panel">
      <h2 id="admin-projects">Projects</h2>
      {props.projects === undefined ? (
        <p class="muted">Loading…</p>
      ) : (
        <div class="admin-scroll">
          <table data-testid="projects-table">
            <thead>
              <tr>
                <th scope="col">Project</th>
                <th scope="col">Created (UTC)</th>
                <th scope="col">Images</th>
                <th scope="col">Storage charged</th>
                {SHOWN_LIMITS.map(([, label]) => (
                  <th scope="col" key={label}>
                    {label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {props.projects.map((p) => (
                <tr key={p.id} data-project={p.name}>
                  <th scope="row">{p.name}</th>
                  <td>{when(p.created_at)}</td>
                  <td>{p.usage?.images ?? "—"}</td>
                  <td>
                    <Quota p={p} />
                  </td>
                  {SHOWN_LIMITS.map(([k]) => (
                    <td key={k}>{p.limits[k] ?? "—"}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form class="admin-inline" onSubmit={create}>
        <label for="new-project">New project</label>
        <input
          id="new-project"
          value={name}
          required
          maxLength={63}
          pattern="[a-z0-9][a-z0-9_.\-]{0,62}"
          title="lower-case letters, digits, '_', '.', '-'"
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <button type="submit" class="secondary" disabled={busy}>
          Create project
        </button>
        {error !== undefined && (
          <span role="alert" class="error">
            {error}
          </span>
        )}
      </form>
      <p class="muted small">
        Limits are changed with <code>contree-server project update</code>.
      </p>
    </section>
  );
}
