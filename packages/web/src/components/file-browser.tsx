import { useEffect, useRef, useState } from "preact/hooks";
import { type ApiClient, ApiError } from "../api/client.js";
import {
  download,
  type FileContent,
  type GrepResult,
  grep,
  listDir,
  readText,
  VIEW_LIMIT,
} from "../api/files.js";
import type { FileEntry } from "../api/types.js";
import { FileText } from "./file-text.js";

const join = (dir: string, name: string) => (dir === "/" ? `/${name}` : `${dir}/${name}`);
const parentOf = (dir: string) => (dir.lastIndexOf("/") <= 0 ? "/" : dir.slice(0, dir.lastIndexOf("/")));
const errText = (e: unknown) => (e instanceof ApiError ? e.message : String(e));

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * Directories of an image, one at a time: Tab reaches the list, the arrow keys move in it,
 * Enter opens a directory or shows a file (as text), Backspace goes up. Grep searches the
 * current directory and below with the server's bounded grep.
 */
export function FileBrowser({ client, image }: { client: ApiClient; image: string }) {
  const [dir, setDir] = useState("/");
  const [entries, setEntries] = useState<FileEntry[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [open, setOpen] = useState<{ path: string; content?: FileContent; error?: string } | undefined>();
  const [pattern, setPattern] = useState("");
  const [found, setFound] = useState<GrepResult | undefined>();
  const [grepError, setGrepError] = useState<string | undefined>();
  const listRef = useRef<HTMLUListElement>(null);

  useEffect(() => {
    let live = true;
    setEntries(undefined);
    setError(undefined);
    listDir(client, image, dir).then(
      (files) => {
        if (!live) return;
        files.sort((a, b) => Number(b.is_dir) - Number(a.is_dir) || (a.path < b.path ? -1 : 1));
        setEntries(files);
      },
      (e: unknown) => live && setError(errText(e)),
    );
    return () => {
      live = false;
    };
  }, [client, image, dir]);

  const show = (path: string, size: number) => {
    setOpen({ path });
    readText(client, image, path, size).then(
      (content) => setOpen({ path, content }),
      (e: unknown) => setOpen({ path, error: errText(e) }),
    );
  };

  const activate = (f: FileEntry) => {
    const path = join(dir, f.path);
    if (f.is_dir) {
      setDir(path);
      setOpen(undefined);
    } else show(path, f.size);
  };

  const onListKey = (e: KeyboardEvent) => {
    const buttons = [...(listRef.current?.querySelectorAll("button") ?? [])];
    const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const move = (i: number) => buttons[Math.max(0, Math.min(buttons.length - 1, i))]?.focus();
    if (e.key === "ArrowDown") move(at + 1);
    else if (e.key === "ArrowUp") move(at - 1);
    else if (e.key === "Home") move(0);
    else if (e.key === "End") move(buttons.length - 1);
    else if (e.key === "Backspace" && dir !== "/") setDir(parentOf(dir));
    else return;
    e.preventDefault();
  };

  const runGrep = (e: Event) => {
    e.preventDefault();
    if (pattern === "") return;
    setFound(undefined);
    setGrepError(undefined);
    grep(client, image, pattern, dir).then(setFound, (err: unknown) => setGrepError(errText(err)));
  };

  const crumbs = dir === "/" ? [] : dir.slice(1).split("/");
  return (
    <div class="cols">
      <div>
        <nav aria-label="Directory" class="small">
          <button type="button" class="link" onClick={() => setDir("/")}>
            /
          </button>
          {crumbs.map((c, i) => (
            <span key={c + String(i)}>
              <button
                type="button"
                class="link"
                onClick={() => setDir(`/${crumbs.slice(0, i + 1).join("/")}`)}
              >
                {c}
              </button>
              {i < crumbs.length - 1 ? "/" : ""}
            </span>
          ))}
        </nav>
        {error !== undefined && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        {entries === undefined && error === undefined && <p class="muted">Loading…</p>}
        {entries !== undefined && (
          <ul
            class="files"
            ref={listRef}
            aria-label={`Files in ${dir}`}
            onKeyDown={onListKey}
            data-testid="file-list"
          >
            {dir !== "/" && (
              <li>
                <button type="button" onClick={() => setDir(parentOf(dir))}>
                  <span aria-hidden="true">↑</span> ..
                </button>
              </li>
            )}
            {entries.map((f) => (
              <li key={f.path}>
                <button
                  type="button"
                  aria-current={open?.path === join(dir, f.path) ? "true" : undefined}
                  onClick={() => activate(f)}
                  data-name={f.path}
                >
                  <span aria-hidden="true">{f.is_dir ? "▸" : f.is_symlink ? "↪" : "·"}</span>
                  <span>
                    {f.path}
                    {f.is_dir ? "/" : ""}
                    {f.is_symlink ? ` → ${f.symlink_to}` : ""}
                  </span>
                  <span class="size">{f.is_dir ? "" : formatSize(f.size)}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
        <form class="toolbar grep" onSubmit={runGrep}>
          <label for="grep-pattern">Grep in {dir}</label>
          <input
            id="grep-pattern"
            value={pattern}
            placeholder="regex"
            onInput={(e) => setPattern(e.currentTarget.value)}
          />
          <button type="submit" class="secondary">
            Search
          </button>
        </form>
        {grepError !== undefined && (
          <p role="alert" class="error">
            {grepError}
          </p>
        )}
        {found !== undefined && (
          <div data-testid="grep-results">
            <p class="muted small">
              {found.matches.length} match(es)
              {found.truncated ? ` (cut short: ${found.truncated_reason ?? ""})` : ""}
            </p>
            <ul class="grep-hits">
              {found.matches
                .filter((m) => m.type === "match")
                .map((m) => (
                  <li key={`${m.path}:${m.line_number}`}>
                    <button type="button" class="link mono" onClick={() => show(m.path, 0)}>
                      {m.path}:{m.line_number}
                    </button>{" "}
                    <span class="mono">{m.line_text.trimEnd()}</span>
                  </li>
                ))}
            </ul>
          </div>
        )}
      </div>
      <div>
        {open === undefined ? (
          <p class="muted">Pick a file to view it.</p>
        ) : (
          <>
            <div class="toolbar">
              <h3 class="mono">{open.path}</h3>
              <button type="button" class="secondary" onClick={() => void download(client, image, open.path)}>
                Download
              </button>
            </div>
            {open.error !== undefined && (
              <p role="alert" class="error">
                {open.error}
              </p>
            )}
            {open.content === undefined && open.error === undefined && <p class="muted">Loading…</p>}
            {open.content?.kind === "binary" && <p class="muted">Binary file: download it to look inside.</p>}
            {open.content?.kind === "too-large" && (
              <p class="muted">Too large to show here (over {formatSize(VIEW_LIMIT)}): download it.</p>
            )}
            {open.content?.kind === "text" && <FileText path={open.path} text={open.content.text} />}
          </>
        )}
      </div>
    </div>
  );
}
