/**
 * The signed-in token lives in sessionStorage (this tab only, gone when it closes). A deep link
 * `/ui/#token=…` is read once and then removed from the address with history.replaceState, so
 * the token is never sent to the server in a URL, kept in history, or shown in a screenshot.
 */

const TOKEN_KEY = "contree.token";
const PROJECT_KEY = "contree.project";

export interface Session {
  token: string;
  project: string | undefined;
}

export function loadSession(): Session | undefined {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token === null || token === "") return undefined;
  const project = sessionStorage.getItem(PROJECT_KEY);
  return { token, project: project === null || project === "" ? undefined : project };
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(TOKEN_KEY, s.token);
  if (s.project === undefined || s.project === "") sessionStorage.removeItem(PROJECT_KEY);
  else sessionStorage.setItem(PROJECT_KEY, s.project);
}

export function clearSession(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(PROJECT_KEY);
}

/**
 * A token given in the fragment (`#token=…`, optionally `&project=…&next=<route>`): returned and
 * erased from the address bar. The fragment never reaches the server; erasing it keeps it out of
 * history and of anything that copies the URL.
 */
export function takeDeepLinkToken(): { token: string; project?: string; next: string } | undefined {
  const hash = location.hash.replace(/^#/, "");
  if (!hash.startsWith("token=")) return undefined;
  const params = new URLSearchParams(hash);
  const token = params.get("token") ?? "";
  const project = params.get("project") ?? undefined;
  const nextParam = params.get("next");
  const next = nextParam?.startsWith("/") ? nextParam : "/images";
  history.replaceState(null, "", `${location.pathname}${location.search}#${next}`);
  // replaceState fires no event: tell the router the route changed.
  window.dispatchEvent(new HashChangeEvent("hashchange"));
  if (token === "") return undefined;
  return project === undefined || project === "" ? { token, next } : { token, project, next };
}
