import { useCallback, useEffect, useState } from "preact/hooks";
import type { Whoami } from "../api/types.js";
import { clearSession } from "../session.js";
import {
  type AdminApi,
  type AdminProject,
  type AdminToken,
  messageOf,
  tokenState,
  when,
} from "./admin-api.js";
import { TokenForm } from "./admin-token-form.js";

/** Revoke with a second, explicit click (no browser dialog): the token stops working at once. */
function RevokeButton(props: { token: AdminToken; self: boolean; onRevoke(): Promise<void> }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!confirming)
    return (
      <button
        type="button"
        class="secondary"
        aria-label={`Revoke ${props.token.name || props.token.id}`}
        onClick={() => setConfirming(true)}
      >
        Revoke
      </button>
    );
  return (
    <span class="admin-confirm">
      <span class="error small">
        {props.self ? "This is your own token: you will be signed out." : "It stops working at once."}
      </span>
      <button
        type="button"
        class="danger"
        disabled={busy}
        // Focus lands on the confirmation so a keyboard user sees what they are confirming.
        ref={(el) => el?.focus()}
        onClick={async () => {
          setBusy(true);
          await props.onRevoke();
          setBusy(false);
          setConfirming(false);
        }}
      >
        Confirm revoke
      </button>
      <button type="button" class="secondary" onClick={() => setConfirming(false)}>
        Cancel
      </button>
    </span>
  );
}

export function TokensPanel(props: { api: AdminApi; projects: AdminProject[] | undefined; whoami: Whoami }) {
  const { api } = props;
  const [filter, setFilter] = useState("");
  const [tokens, setTokens] = useState<AdminToken[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const reload = useCallback(() => {
    api.tokens(filter === "" ? undefined : filter).then(
      (t) => {
        setTokens(t);
        setError(undefined);
      },
      (e: unknown) => setError(messageOf(e)),
    );
  }, [api, filter]);
  useEffect(reload, [reload]);

  const revoke = async (t: AdminToken) => {
    try {
      await api.revokeToken(t.id);
      // Revoking the token this console uses: every next call is a 401, so sign out now.
      if (t.id === props.whoami.token_uuid) {
        clearSession();
        location.reload();
        return;
      }
      reload();
    } catch (e) {
      setError(messageOf(e));
    }
  };

  return (
    <section aria-labelledby="admin-tokens" class="panel">
      <h2 id="admin-tokens">Tokens</h2>
      <TokenForm
        api={api}
        projects={props.projects}
        whoami={props.whoami}
        defaultProject={filter || props.whoami.project}
        onCreated={reload}
      />
      <div class="admin-inline">
        <label for="token-filter">Show tokens of</label>
        <select id="token-filter" value={filter} onChange={(e) => setFilter(e.currentTarget.value)}>
          <option value="">every project</option>
          {(props.projects ?? []).map((p) => (
            <option key={p.id} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
      </div>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {tokens === undefined ? (
        error === undefined && <p class="muted">Loading…</p>
      ) : (
        <div class="admin-scroll">
          <table data-testid="tokens-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Project</th>
                <th scope="col">Permissions</th>
                <th scope="col">Created (UTC)</th>
                <th scope="col">Expires (UTC)</th>
                <th scope="col">Last used (UTC)</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => {
                const state = tokenState(t);
                const self = t.id === props.whoami.token_uuid;
                return (
                  <tr key={t.id} data-token-id={t.id} class={state === "active" ? "" : "inactive"}>
                    <th scope="row">
                      {t.name === "" ? <span class="muted">(unnamed)</span> : t.name}
                      {self && <span class="admin-badge">you</span>}
                      {t.admin && <span class="admin-badge">admin</span>}
                      <div class="muted small mono">{t.id}</div>
                    </th>
                    <td>{t.project}</td>
                    <td class="small">{t.permissions.length === 0 ? "none" : t.permissions.join(", ")}</td>
                    <td>{when(t.created_at)}</td>
                    <td>{t.expires_at === null ? "never" : when(t.expires_at)}</td>
                    <td data-testid="token-last-used">
                      {t.last_used_at === null ? "never" : when(t.last_used_at)}
                    </td>
                    <td data-testid="token-state">{state}</td>
                    <td>
                      {state === "active" && (
                        <RevokeButton token={t} self={self} onRevoke={() => revoke(t)} />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
