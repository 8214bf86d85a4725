import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiClient, ApiError } from "./api/client.js";
import type { Whoami } from "./api/types.js";
import { type Console, ConsoleContext } from "./context.js";
import { matchRoute, navigate, routeQuery, useRoutePath } from "./router.js";
import { ROUTES } from "./routes.js";
import { clearSession, loadSession, type Session, saveSession, takeDeepLinkToken } from "./session.js";
import { isAdminToken } from "./views/admin-api.js";
import { SignIn } from "./views/sign-in.js";

type State =
  | { kind: "checking" }
  | { kind: "signed-out"; message?: string }
  | { kind: "signed-in"; session: Session; whoami: Whoami };

/** Why a token did not get in, in words for the sign-in form. */
export function signInMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return `The server refused this token (${err.message}).`;
    if (err.status === 403) return `This token may not do that (${err.message}).`;
    if (err.status === 404) return `Unknown project (${err.message}).`;
    return err.message;
  }
  return "The server cannot be reached.";
}

async function check(session: Session): Promise<Whoami> {
  return new ApiClient(session).json<Whoami>("/whoami");
}

export function App() {
  const [state, setState] = useState<State>({ kind: "checking" });
  const path = useRoutePath();

  useEffect(() => {
    const start = (session: Session | undefined) => {
      if (session === undefined) {
        setState({ kind: "signed-out" });
        return;
      }
      setState({ kind: "checking" });
      check(session).then(
        (whoami) => {
          saveSession(session);
          setState({ kind: "signed-in", session, whoami });
        },
        (err: unknown) => {
          clearSession();
          setState({ kind: "signed-out", message: signInMessage(err) });
        },
      );
    };
    const link = takeDeepLinkToken();
    start(link ? { token: link.token, project: link.project } : loadSession());
    // A deep link opened in a tab that already shows the console changes only the fragment.
    const onHash = () => {
      const again = takeDeepLinkToken();
      if (again) start({ token: again.token, project: again.project });
    };
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  const signIn = async (session: Session): Promise<string | undefined> => {
    try {
      const whoami = await check(session);
      saveSession(session);
      setState({ kind: "signed-in", session, whoami });
      if (!location.hash.startsWith("#/")) navigate("/images");
      return undefined;
    } catch (err) {
      return signInMessage(err);
    }
  };

  const signOut = () => {
    clearSession();
    setState({ kind: "signed-out", message: "Signed out." });
  };

  if (state.kind === "checking") return <p class="loading">Loading…</p>;
  if (state.kind === "signed-out") return <SignIn message={state.message} onSignIn={signIn} />;
  return (
    <Shell
      key={state.session.project ?? ""}
      session={state.session}
      whoami={state.whoami}
      path={path}
      onSignOut={signOut}
      onSwitch={signIn}
    />
  );
}

interface ShellProps {
  session: Session;
  whoami: Whoami;
  path: string;
  onSignOut(): void;
  onSwitch(s: Session): Promise<string | undefined>;
}

function Shell({ session, whoami, path, onSignOut, onSwitch }: ShellProps) {
  const value = useMemo<Console>(() => ({ client: new ApiClient(session), whoami }), [session, whoami]);
  const bare = path.split("?")[0]!;
  let view = <NotFound />;
  let active = "";
  for (const r of ROUTES) {
    const params = matchRoute(r.pattern, bare);
    if (params === undefined) continue;
    const View = r.view;
    // Keyed by the route: another image or operation is a fresh view, with no state left over.
    view = <View key={bare} params={params} query={routeQuery(path)} />;
    active = r.pattern;
    break;
  }
  const section = `/${bare.split("/")[1] ?? ""}`;
  return (
    <ConsoleContext.Provider value={value}>
      <button type="button" class="skip" onClick={skipToMain}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">contree</span>
        <nav aria-label="Sections">
          <ul>
            {ROUTES.filter(
              (r) => r.nav !== undefined && (r.pattern !== "/admin" || isAdminToken(whoami)),
            ).map((r) => (
              <li key={r.pattern}>
                <a
                  href={`#${r.pattern}`}
                  aria-current={r.pattern === section || r.pattern === active ? "page" : undefined}
                >
                  {r.nav}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <ProjectSwitch session={session} whoami={whoami} onSwitch={onSwitch} />
        <button type="button" class="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {view}
      </main>
    </ConsoleContext.Provider>
  );
}

/** A button, not `href="#main"`: the fragment is the router's. */
function skipToMain(): void {
  document.getElementById("main")?.focus();
}

function ProjectSwitch(props: {
  session: Session;
  whoami: Whoami;
  onSwitch(s: Session): Promise<string | undefined>;
}) {
  const [name, setName] = useState(props.session.project ?? "");
  const [error, setError] = useState<string | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const project = name.trim() === "" ? undefined : name.trim();
    const why = await props.onSwitch({ token: props.session.token, project });
    setError(why);
  };
  return (
    <form class="project" onSubmit={submit} aria-label="Project">
      <span class="muted">
        project <strong data-testid="project-name">{props.whoami.project}</strong>
      </span>
      <label for="project-switch" class="visually-hidden">
        Switch to project (admin tokens)
      </label>
      <input
        id="project-switch"
        value={name}
        placeholder="switch project (admin)"
        size={16}
        onInput={(e) => setName(e.currentTarget.value)}
      />
      <button type="submit" class="secondary">
        Switch
      </button>
      {error !== undefined && (
        <span role="alert" class="error">
          {error}
        </span>
      )}
    </form>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no such page. <a href="#/images">Go to the images.</a>
      </p>
    </section>
  );
}
