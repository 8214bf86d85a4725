import { useEffect, useState } from "preact/hooks";

/** The route is the URL fragment (`#/images/<uuid>`): the server only ever serves index.html. */
export function currentPath(): string {
  const h = location.hash.replace(/^#/, "");
  return h.startsWith("/") ? h : "/images";
}

export function navigate(path: string): void {
  if (currentPath() !== path || location.hash === "") location.hash = `#${path}`;
}

export function useRoutePath(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const on = () => setPath(currentPath());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return path;
}

/** Matches `/images/:uuid`-style patterns; the params are decoded. */
export function matchRoute(pattern: string, path: string): Record<string, string> | undefined {
  const pp = pattern.split("/");
  const parts = path.split("?")[0]!.split("/");
  if (pp.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pp.length; i++) {
    const p = pp[i]!;
    const v = parts[i]!;
    if (p.startsWith(":")) {
      if (v === "") return undefined;
      try {
        params[p.slice(1)] = decodeURIComponent(v);
      } catch {
        return undefined;
      }
    } else if (p !== v) return undefined;
  }
  return params;
}

/** The query part of the fragment (`#/images/x?path=/etc`). */
export function routeQuery(path: string): URLSearchParams {
  const i = path.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : path.slice(i + 1));
}
