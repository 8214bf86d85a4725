import { useState } from "preact/hooks";
import type { Whoami } from "../api/types.js";
import {
  type AdminApi,
  type AdminProject,
  type CreatedToken,
  isAdminToken,
  messageOf,
  PERMISSIONS,
  type Permission,
} from "./admin-api.js";

const EXPIRY: readonly [string, number | undefined][] = [
  ["never", undefined],
  ["1 hour", 3600],
  ["1 day", 86_400],
  ["7 days", 7 * 86_400],
  ["30 days", 30 * 86_400],
  ["90 days", 90 * 86_400],
  ["1 year", 365 * 86_400],
];

/** The new token's secret, shown once: copy it now, it is never listed again. */
function Secret({ created, onDone }: { created: CreatedToken; onDone(): void }) {
  const [copied, setCopied] = useState<string | undefined>();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied("Copied.");
    } catch {
      // No clipboard access (permissions, insecure origin): leave the text selected instead.
      (document.getElementById("new-secret") as HTMLInputElement | null)?.select();
      setCopied("Select it and copy it by hand (Ctrl+C).");
    }
  };
  return (
    <div class="admin-secret" role="status" aria-labelledby="secret-title">
      <p id="secret-title">
        <strong>
          Token “{created.name}” created for {created.project}.
        </strong>{" "}
        Copy its secret now: it is shown this once and cannot be retrieved later.
      </p>
      <div class="admin-inline">
        <label for="new-secret" class="visually-hidden">
          New token secret
        </label>
        <input
          id="new-secret"
          class="mono"
          readOnly
          size={52}
          value={created.token}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" onClick={copy}>
          Copy
        </button>
        <button type="button" class="secondary" onClick={onDone}>
          Done
        </button>
        {copied !== undefined && <span class="small">{copied}</span>}
      </div>
    </div>
  );
}

export function TokenForm(props: {
  api: AdminApi;
  projects: AdminProject[] | undefined;
  whoami: Whoami;
  defaultProject: string;
  onCreated(): void;
}) {
  const mine = props.whoami.permissions;
  const [project, setProject] = useState(props.defaultProject);
  const [name, setName] = useState("");
  const [perms, setPerms] = useState<Set<Permission>>(new Set(PERMISSIONS.filter((p) => mine[p] === true)));
  const [admin, setAdmin] = useState(false);
  const [expiry, setExpiry] = useState(0);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<CreatedToken | undefined>();

  // A token cannot outlive its creator: with an expiring token only shorter lifetimes are offered.
  const left =
    props.whoami.token_expiration === null ? Infinity : props.whoami.token_expiration - Date.now() / 1000;
  const allowed = (s: number | undefined) => (s === undefined ? left === Infinity : s < left);

  const toggle = (p: Permission, on: boolean) => {
    const next = new Set(perms);
    if (on) next.add(p);
    else next.delete(p);
    setPerms(next);
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const seconds = EXPIRY[expiry]?.[1];
    try {
      const t = await props.api.createToken({
        project,
        name: name.trim(),
        permissions: PERMISSIONS.filter((p) => perms.has(p)),
        ...(admin ? { admin: true } : {}),
        ...(seconds === undefined ? {} : { expires_in_seconds: seconds }),
      });
      setCreated(t);
      setName("");
      setError(undefined);
      props.onCreated();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  if (created !== undefined) return <Secret created={created} onDone={() => setCreated(undefined)} />;
  return (
    <form class="admin-form" onSubmit={submit} aria-labelledby="token-form-title">
      <h3 id="token-form-title">New token</h3>
      <div class="admin-inline">
        <label for="token-project">Project</label>
        <select id="token-project" value={project} onChange={(e) => setProject(e.currentTarget.value)}>
          {(props.projects ?? [{ id: "", name: project }]).map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
        <label for="token-name">Name</label>
        <input
          id="token-name"
          required
          maxLength={200}
          value={name}
          placeholder="what it is for"
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <label for="token-expiry">Expires after</label>
        <select
          id="token-expiry"
          value={String(expiry)}
          onChange={(e) => setExpiry(Number(e.currentTarget.value))}
        >
          {EXPIRY.map(([label, s], i) => (
            <option key={label} value={String(i)} disabled={!allowed(s)}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <fieldset>
        <legend>Permissions</legend>
        {PERMISSIONS.map((p) => (
          <label key={p} class="admin-check">
            <input
              type="checkbox"
              name="permission"
              value={p}
              checked={perms.has(p)}
              disabled={mine[p] !== true}
              onChange={(e) => toggle(p, e.currentTarget.checked)}
            />
            {p}
          </label>
        ))}
        {isAdminToken(props.whoami) && (
          <label class="admin-check">
            <input
              type="checkbox"
              name="admin"
              checked={admin}
              onChange={(e) => setAdmin(e.currentTarget.checked)}
            />
            admin token (any project, this Admin view)
          </label>
        )}
      </fieldset>
      <button type="submit" disabled={busy}>
        {busy ? "Creating…" : "Create token"}
      </button>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </form>
  );
}
