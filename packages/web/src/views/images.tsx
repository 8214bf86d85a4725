import { useEffect, useMemo, useState } from "preact/hooks";
import { allImages, recentRuns } from "../api/lists.js";
import type { Image, OperationSummary } from "../api/types.js";
import { useConsole } from "../context.js";
import { navigate } from "../router.js";
import type { ViewProps } from "../routes.js";
import { layout, type Placed } from "../tree/layout.js";
import { buildLineage, chainHolding, findImages, viewTree } from "../tree/model.js";
import { TreeCanvas } from "../tree/tree-canvas.js";

interface Loaded {
  images: Image[];
  runs: OperationSummary[];
  /** When the data arrived (performance.now()), to time the first frame. */
  at: number;
  fetchMs: number;
}

/** The project's images as their lineage tree (`#/images`, `?focus=<uuid>` to start at one). */
export function ImagesView({ query }: ViewProps) {
  const { client } = useConsole();
  const [data, setData] = useState<Loaded | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const [renderMs, setRenderMs] = useState<number | undefined>();
  const [focus, setFocus] = useState<string | undefined>(query.get("focus") ?? undefined);
  const [find, setFind] = useState("");
  const [findMsg, setFindMsg] = useState<string | undefined>();
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const ac = new AbortController();
    const t0 = performance.now();
    Promise.all([allImages(client, 20_000, ac.signal), recentRuns(client, 5_000, ac.signal)]).then(
      ([images, runs]) => setData({ images, runs, at: performance.now(), fetchMs: performance.now() - t0 }),
      (e: unknown) => {
        if (!ac.signal.aborted) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => ac.abort();
  }, [client, generation]);

  const lineage = useMemo(() => (data ? buildLineage(data.images, data.runs) : undefined), [data]);
  // An image to focus inside a folded chain unfolds that chain (no state change: derived).
  const view = useMemo(() => {
    if (lineage === undefined) return undefined;
    const tree = viewTree(lineage, expanded);
    const holder = focus === undefined ? undefined : chainHolding(tree, focus);
    if (holder === undefined) return { placed: layout(tree), expanded };
    const more = new Set([...expanded, holder]);
    return { placed: layout(viewTree(lineage, more)), expanded: more };
  }, [lineage, expanded, focus]);
  const placed = view?.placed;

  const findSubmit = (e: Event) => {
    e.preventDefault();
    if (lineage === undefined) return;
    const hits = findImages(lineage, find, 2);
    if (hits.length === 0) setFindMsg(`No image has a tag or UUID starting with "${find.trim()}".`);
    else {
      setFindMsg(hits.length > 1 ? "Several match: the first found is shown." : undefined);
      setFocus(hits[0]!.uuid);
    }
  };

  const activate = (p: Placed) => {
    const n = p.node;
    if (n.kind === "image") navigate(`/images/${n.id}`);
    else if (n.kind === "chain") setExpanded(new Set([...(view?.expanded ?? expanded), n.images[0]!.uuid]));
  };

  const failed = lineage ? [...lineage.marks.values()].reduce((a, m) => a + m.failed, 0) : 0;
  const unchanged = lineage ? [...lineage.marks.values()].reduce((a, m) => a + m.unchanged, 0) : 0;
  return (
    <section aria-labelledby="view-title">
      <div class="toolbar">
        <h1 id="view-title">Images</h1>
        {data !== undefined && (
          <span class="muted" data-testid="tree-stats" data-render-ms={renderMs?.toFixed(1)}>
            {data.images.length} images, {lineage?.roots.length ?? 0} root(s)
            {failed > 0 ? `, ${failed} failed run(s)` : ""}
            {unchanged > 0 ? `, ${unchanged} run(s) that changed nothing` : ""}
            {renderMs !== undefined ? ` · drawn in ${Math.round(renderMs)} ms` : ""}
          </span>
        )}
        <form class="toolbar" onSubmit={findSubmit}>
          <label for="tree-find">Find</label>
          <input
            id="tree-find"
            value={find}
            placeholder="tag or UUID prefix"
            onInput={(e) => setFind(e.currentTarget.value)}
          />
          <button type="submit" class="secondary">
            Go
          </button>
        </form>
        <button
          type="button"
          class="secondary"
          onClick={() => {
            setData(undefined);
            setRenderMs(undefined);
            setGeneration(generation + 1);
          }}
        >
          Reload
        </button>
        {(view?.expanded.size ?? 0) > 0 && (
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setFocus(undefined);
              setExpanded(new Set());
            }}
          >
            Fold chains again
          </button>
        )}
      </div>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {findMsg !== undefined && (
        <p role="status" class="muted">
          {findMsg}
        </p>
      )}
      {data === undefined && error === undefined && <p class="muted">Loading…</p>}
      {data !== undefined && data.images.length === 0 && (
        <p>
          No images yet. <a href="#/import">Import one</a>.
        </p>
      )}
      {placed !== undefined && data !== undefined && data.images.length > 0 && (
        <>
          <TreeCanvas
            key={focus ?? ""}
            placed={placed}
            marks={lineage!.marks}
            initialFocus={focus}
            onActivate={activate}
            onDrawn={() => setRenderMs(performance.now() - data.at)}
          />
          <p class="tree-legend">
            <span>
              <span class="swatch legend-root" /> root / imported
            </span>
            <span>
              <span class="swatch legend-run" /> run result
            </span>
            <span>
              <span class="swatch legend-failed" /> red ring: failed runs on it (✗N)
            </span>
            <span>=N: runs that changed nothing</span>
            <span>▭ … N images: a folded straight chain (Enter or click unfolds)</span>
          </p>
        </>
      )}
    </section>
  );
}
