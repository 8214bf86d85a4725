import { useState } from "preact/hooks";
import { type ApiClient, ApiError } from "../api/client.js";
import { type DiffEntry, type DiffResult, diff, readText } from "../api/files.js";
import { type DiffLine, lineDiff, splitLines } from "../text/line-diff.js";
import { formatSize } from "./file-browser.js";

const errText = (e: unknown) => (e instanceof ApiError ? e.message : String(e));
/** Inline diffs for files up to this size on each side (fetched through the download endpoint). */
const INLINE_LIMIT = 256 * 1024;

type Inline = { lines: DiffLine[] } | { note: string };

/**
 * What changed from another image (default: the parent) to this one, from the server's
 * `GET /v1/inspect/{uuid}/diff`; a changed text file opens as a line diff computed here.
 */
export function DiffPanel({
  client,
  image,
  parent,
}: {
  client: ApiClient;
  image: string;
  parent: string | null;
}) {
  const [against, setAgainst] = useState(parent ?? "");
  const [result, setResult] = useState<DiffResult | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [inline, setInline] = useState<{ path: string; body?: Inline } | undefined>();

  const run = (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    setInline(undefined);
    diff(client, image, against.trim() === "" ? undefined : against.trim().toLowerCase()).then(
      (r) => {
        setBusy(false);
        setResult(r);
      },
      (err: unknown) => {
        setBusy(false);
        setError(errText(err));
      },
    );
  };

  const openInline = async (entry: DiffEntry, other: string) => {
    setInline({ path: entry.path });
    const side = async (img: string, s: { type: string; size: number } | undefined) => {
      if (s === undefined) return { kind: "text" as const, text: "" };
      if (s.type !== "file") return { kind: "binary" as const };
      if (s.size > INLINE_LIMIT) return { kind: "too-large" as const, size: s.size };
      return readText(client, img, entry.path, s.size);
    };
    try {
      const [a, b] = await Promise.all([side(other, entry.old), side(image, entry.new)]);
      if (a.kind !== "text" || b.kind !== "text") {
        const why = a.kind === "too-large" || b.kind === "too-large" ? "too large" : "not text";
        setInline({ path: entry.path, body: { note: `No inline diff: the file is ${why}.` } });
        return;
      }
      const lines = lineDiff(splitLines(a.text), splitLines(b.text));
      setInline({
        path: entry.path,
        body: lines === undefined ? { note: "No inline diff: too many changes." } : { lines },
      });
    } catch (err) {
      setInline({ path: entry.path, body: { note: errText(err) } });
    }
  };

  return (
    <div>
      <form class="toolbar" onSubmit={run}>
        <label for="diff-against">Compare with image</label>
        <input
          id="diff-against"
          class="mono"
          size={38}
          value={against}
          placeholder="image UUID (default: the parent)"
          onInput={(e) => setAgainst(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          {busy ? "Comparing…" : "Diff"}
        </button>
      </form>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {result !== undefined && (
        <div class="cols">
          <div>
            <p class="muted small" data-testid="diff-summary">
              {result.entries.length} change(s) from <span class="mono">{result.against.slice(0, 8)}</span>
              {result.truncated ? ` (cut short: ${result.truncated_reason ?? ""})` : ""}
            </p>
            <table data-testid="diff-entries">
              <thead>
                <tr>
                  <th scope="col">change</th>
                  <th scope="col">path</th>
                  <th scope="col">what</th>
                </tr>
              </thead>
              <tbody>
                {result.entries.map((e) => (
                  <tr key={e.path}>
                    <td class={`status-${e.status}`}>{e.status}</td>
                    <td class="mono">
                      {(e.new ?? e.old)?.type === "file" ? (
                        <button
                          type="button"
                          class="link mono"
                          onClick={() => void openInline(e, result.against)}
                        >
                          {e.path}
                        </button>
                      ) : (
                        e.path
                      )}
                    </td>
                    <td class="small">
                      {e.changes?.join(", ") ?? ""}
                      {e.new !== undefined && e.new.type === "file" ? ` ${formatSize(e.new.size)}` : ""}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div>
            {inline !== undefined && (
              <>
                <h3 class="mono">{inline.path}</h3>
                {inline.body === undefined && <p class="muted">Loading…</p>}
                {inline.body !== undefined && "note" in inline.body && (
                  <p class="muted">{inline.body.note}</p>
                )}
                {inline.body !== undefined && "lines" in inline.body && (
                  <pre class="file" data-testid="inline-diff">
                    {inline.body.lines.map((l) => (
                      <span
                        key={`${l.oldNo}:${l.newNo}`}
                        class={`diff-line ${l.op === "+" ? "diff-add" : l.op === "-" ? "diff-del" : ""}`}
                      >
                        {l.op} {l.text}
                      </span>
                    ))}
                  </pre>
                )}
              </>
            )}
          </div>
        </div>
      )}
    </div>
  );
}
