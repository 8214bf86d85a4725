import { useState } from "preact/hooks";
import type { Session } from "../session.js";

interface Props {
  message?: string | undefined;
  onSignIn(s: Session): Promise<string | undefined>;
}

export function SignIn({ message, onSignIn }: Props) {
  const [token, setToken] = useState("");
  const [project, setProject] = useState("");
  const [error, setError] = useState<string | undefined>(message);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (token.trim() === "") {
      setError("Enter an API token.");
      return;
    }
    // The previous message goes at once: a reader (or a test) never takes it for this answer.
    setError(undefined);
    setBusy(true);
    const why = await onSignIn({ token: token.trim(), project: project.trim() || undefined });
    setBusy(false);
    setError(why);
  };
  return (
    <main class="signin" id="main">
      <h1>contree console</h1>
      <form onSubmit={submit} aria-describedby={error === undefined ? undefined : "signin-error"}>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <label for="signin-project">Project (optional, admin tokens)</label>
        <input
          id="signin-project"
          name="project"
          autocomplete="off"
          value={project}
          onInput={(e) => setProject(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error !== undefined && (
          <p
            id="signin-error"
            role={error === "Signed out." ? "status" : "alert"}
            class={error === "Signed out." ? "muted" : "error"}
          >
            {error}
          </p>
        )}
      </form>
      <p class="muted small">
        The token stays in this tab (sessionStorage) and is sent only as an Authorization header.
      </p>
    </main>
  );
}
