import { useEffect, useState } from "preact/hooks";
import type { OperationSummary } from "../api/types.js";
import { errorText, formatSeconds, formatTime, KINDS, STATUSES, shortId } from "../components/ops-format.js";
import { StatusBadge } from "../components/ops-status.js";
import { useConsole } from "../context.js";
import { navigate } from "../router.js";
import type { ViewProps } from "../routes.js";
import "../components/ops.css";

export const PAGE_SIZES = [5, 10, 25, 100] as const;
const DEFAULT_PAGE_SIZE = 25;
/** The list is re-read this often while the tab is visible (the API has no list stream). */
const POLL_MS = 2000;

interface ListQuery {
  status: string;
  kind: string;
  page: number;
  per: number;
}

function listPath({ status, kind, page, per }: ListQuery): string {
  const q = new URLSearchParams();
  if (status !== "") q.set("status", status);
  if (kind !== "") q.set("kind", kind);
  if (per !== DEFAULT_PAGE_SIZE) q.set("per", String(per));
  if (page > 1) q.set("page", String(page));
  const s = q.toString();
  return `/operations${s === "" ? "" : `?${s}`}`;
}

export function OperationsView({ query }: ViewProps) {
  const { client } = useConsole();
  const status = (STATUSES as readonly string[]).includes(query.get("status") ?? "")
    ? query.get("status")!
    : "";
  const kind = (KINDS as readonly string[]).includes(query.get("kind") ?? "") ? query.get("kind")! : "";
  const page = Math.max(1, Math.floor(Number(query.get("page") ?? "1")) || 1);
  const perAsked = Number(query.get("per") ?? DEFAULT_PAGE_SIZE);
  const per = (PAGE_SIZES as readonly number[]).includes(perAsked) ? perAsked : DEFAULT_PAGE_SIZE;
  const here: ListQuery = { status, kind, page, per };
  // Rows are kept with the query they answer: after a filter or page change, the previous
  // query's rows are never shown under the new one (the fetch for it may still be on its way).
  const key = `${status}|${kind}|${page}|${per}`;
  const [shown, setShown] = useState<{ key: string; rows: OperationSummary[] } | undefined>();
  const rows = shown?.key === key ? shown.rows : undefined;
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ac: AbortController | undefined;
    const tick = async () => {
      timer = undefined;
      if (document.visibilityState === "visible") {
        ac = new AbortController();
        try {
          // One row more than shown tells whether a next page exists.
          const r = await client.json<OperationSummary[]>("/operations", {
            query: {
              limit: per + 1,
              offset: (page - 1) * per,
              status: status === "" ? undefined : status,
              kind: kind === "" ? undefined : kind,
            },
            signal: ac.signal,
          });
          if (stopped) return;
          setShown({ key, rows: r.slice(0, per) });
          setMore(r.length > per);
          setError(undefined);
        } catch (e) {
          if (stopped) return;
          setError(errorText(e));
        }
      }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    };
    void tick();
    return () => {
      stopped = true;
      ac?.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [client, status, kind, page, per, key]);

  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Operations</h1>
      <form class="ops-filters" aria-label="Filter operations" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select
            value={status}
            onChange={(e) => navigate(listPath({ ...here, status: e.currentTarget.value, page: 1 }))}
            data-testid="filter-status"
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select
            value={kind}
            onChange={(e) => navigate(listPath({ ...here, kind: e.currentTarget.value, page: 1 }))}
            data-testid="filter-kind"
          >
            <option value="">any</option>
            <option value="instance">run (instance)</option>
            <option value="image_import">import (image_import)</option>
          </select>
        </label>
        <label>
          Per page
          <select
            value={String(per)}
            onChange={(e) => navigate(listPath({ ...here, per: Number(e.currentTarget.value), page: 1 }))}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span class="small muted">Newest first; refreshed every {POLL_MS / 1000} s.</span>
      </form>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {rows === undefined ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <p class="muted" data-testid="ops-empty" data-query={key}>
          No operations{status !== "" || kind !== "" ? " match these filters" : ""}.
        </p>
      ) : (
        <table data-testid="ops-table" data-query={key}>
          <thead>
            <tr>
              <th scope="col">Operation</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">Duration</th>
              <th scope="col">Result image</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.uuid} data-uuid={r.uuid} data-status={r.status} data-kind={r.kind}>
                <td>
                  <a href={`#/operations/${r.uuid}`} class="mono" aria-label={`operation ${r.uuid}`}>
                    {shortId(r.uuid)}
                  </a>
                </td>
                <td>{r.kind === "image_import" ? "import" : "run"}</td>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td>{formatTime(r.created_at)}</td>
                <td>{formatSeconds(r.duration)}</td>
                <td>
                  {r.result_image_uuid === null ? (
                    "–"
                  ) : (
                    <a href={`#/images/${r.result_image_uuid}`} class="mono">
                      {shortId(r.result_image_uuid)}
                    </a>
                  )}
                </td>
                <td class="error small">{r.error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav class="ops-pager" aria-label="Pages">
        <button
          type="button"
          class="secondary"
          disabled={page <= 1}
          onClick={() => navigate(listPath({ ...here, page: page - 1 }))}
        >
          ← Newer
        </button>
        <span data-testid="ops-page">Page {page}</span>
        <button
          type="button"
          class="secondary"
          disabled={!more}
          onClick={() => navigate(listPath({ ...here, page: page + 1 }))}
        >
          Older →
        </button>
      </nav>
    </section>
  );
}
