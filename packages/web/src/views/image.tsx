import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api/client.js";
import { allImages } from "../api/lists.js";
import type { Image } from "../api/types.js";
import { DiffPanel } from "../components/diff-panel.js";
import { FileBrowser, formatSize } from "../components/file-browser.js";
import { useConsole } from "../context.js";
import type { ViewProps } from "../routes.js";
import { pathToRoot } from "../tree/model.js";

const errText = (e: unknown) => (e instanceof ApiError ? e.message : String(e));
/**
 * The lineage path: the first ancestors one request each; a deeper image reads the project's
 * image list once (1,000 a page) and follows the parent links in it.
 */
const LINEAGE_STEPS = 8;
/** Ancestors listed (the root is always shown after them). */
const LINEAGE_SHOWN = 50;

type Tab = "files" | "diff";

/** One image: metadata, tags, lineage to the root, files, and diff (`#/images/<uuid>`). */
export function ImageView({ params }: ViewProps) {
  const { client } = useConsole();
  const uuid = (params["uuid"] ?? "").toLowerCase();
  const [image, setImage] = useState<Image | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [lineage, setLineage] = useState<{ images: Image[] } | undefined>();
  const [tab, setTab] = useState<Tab>("files");
  const [tagInput, setTagInput] = useState("");
  const [tagMsg, setTagMsg] = useState<{ error: boolean; text: string } | undefined>();

  useEffect(() => {
    let live = true;
    setImage(undefined);
    setLineage(undefined);
    setError(undefined);
    client.json<Image>(`/inspect/${encodeURIComponent(uuid)}/`).then(
      async (img) => {
        if (!live) return;
        setImage(img);
        const chain: Image[] = [];
        let next = img.parent_uuid;
        while (next !== null && chain.length < LINEAGE_STEPS && live) {
          const parent: Image | undefined = await client
            .json<Image>(`/inspect/${next}/`)
            .catch(() => undefined);
          if (parent === undefined) break;
          chain.push(parent);
          next = parent.parent_uuid;
        }
        if (next !== null && live) {
          const all = await allImages(client).catch(() => undefined);
          const rest =
            all === undefined ? [] : pathToRoot({ byId: new Map(all.map((i) => [i.uuid, i])) }, next);
          chain.push(...rest);
        }
        if (live) setLineage({ images: chain });
      },
      (e: unknown) => live && setError(errText(e)),
    );
    return () => {
      live = false;
    };
  }, [client, uuid]);

  const setTag = async (e: Event) => {
    e.preventDefault();
    const tag = tagInput.trim();
    if (tag === "") return;
    try {
      const img = await client.json<Image>(`/images/${uuid}/tag`, { method: "PATCH", json: { tag } });
      setImage(img);
      setTagInput("");
      setTagMsg({ error: false, text: `Tagged ${tag}.` });
    } catch (err) {
      setTagMsg({ error: true, text: errText(err) });
    }
  };
  const removeTag = async (tag: string) => {
    try {
      const img = await client.json<Image>(`/images/${uuid}/tag`, { method: "DELETE", query: { tag } });
      setImage(img);
      setTagMsg({ error: false, text: `Removed ${tag}.` });
    } catch (err) {
      setTagMsg({ error: true, text: errText(err) });
    }
  };

  if (error !== undefined)
    return (
      <section>
        <h1>Image</h1>
        <p role="alert" class="error">
          {error}
        </p>
      </section>
    );
  if (image === undefined) return <p class="muted">Loading…</p>;
  return (
    <section aria-labelledby="view-title">
      <div class="toolbar">
        <h1 id="view-title">
          Image <span class="mono">{image.uuid}</span>
        </h1>
        <a href={`#/images?focus=${image.uuid}`}>Show in tree</a>
      </div>
      <div class="cols">
        <dl class="meta" data-testid="image-meta">
          <dt>tag</dt>
          <dd data-testid="image-tag">{image.tag ?? "—"}</dd>
          <dt>created</dt>
          <dd>{image.created_at}</dd>
          <dt>size</dt>
          <dd>{formatSize(image.size)}</dd>
          <dt>parent</dt>
          <dd class="mono">
            {image.parent_uuid === null ? (
              "—"
            ) : (
              <a href={`#/images/${image.parent_uuid}`}>{image.parent_uuid}</a>
            )}
            {image.parent_deleted === true ? " (deleted)" : ""}
          </dd>
          <dt>operation</dt>
          <dd class="mono">
            {image.operation_uuid === null ? (
              "—"
            ) : (
              <a href={`#/operations/${image.operation_uuid}`}>{image.operation_uuid}</a>
            )}
          </dd>
        </dl>
        <div>
          <form class="toolbar" onSubmit={setTag}>
            <label for="tag-input">Set tag</label>
            <input id="tag-input" value={tagInput} onInput={(e) => setTagInput(e.currentTarget.value)} />
            <button type="submit">Set</button>
            {image.tag !== null && (
              <button type="button" class="secondary" onClick={() => void removeTag(image.tag!)}>
                Remove tag {image.tag}
              </button>
            )}
          </form>
          {tagMsg !== undefined && (
            <p role={tagMsg.error ? "alert" : "status"} class={tagMsg.error ? "error" : "ok"}>
              {tagMsg.text}
            </p>
          )}
          <h2>Lineage</h2>
          {lineage === undefined ? (
            <p class="muted">Loading…</p>
          ) : (
            <ol class="lineage" data-testid="lineage">
              <li class="mono">
                {image.uuid.slice(0, 8)} {image.tag !== null && <span class="tag">{image.tag}</span>} (this
                image)
              </li>
              {(lineage.images.length > LINEAGE_SHOWN + 1
                ? lineage.images.slice(0, LINEAGE_SHOWN)
                : lineage.images
              ).map((p) => (
                <li key={p.uuid} class="mono">
                  <a href={`#/images/${p.uuid}`}>{p.uuid.slice(0, 8)}</a>{" "}
                  {p.tag !== null && <span class="tag">{p.tag}</span>}
                </li>
              ))}
              {lineage.images.length > LINEAGE_SHOWN + 1 && (
                <>
                  <li class="muted">… {lineage.images.length - LINEAGE_SHOWN - 1} more</li>
                  <li class="mono">
                    <a href={`#/images/${lineage.images.at(-1)!.uuid}`}>
                      {lineage.images.at(-1)!.uuid.slice(0, 8)}
                    </a>{" "}
                    {lineage.images.at(-1)!.tag !== null && (
                      <span class="tag">{lineage.images.at(-1)!.tag}</span>
                    )}{" "}
                    (root)
                  </li>
                </>
              )}
            </ol>
          )}
        </div>
      </div>
      <div class="tabs" role="tablist" aria-label="Image panels">
        {(["files", "diff"] as const).map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            id={`tab-${t}`}
            aria-selected={tab === t}
            aria-controls={`panel-${t}`}
            class={tab === t ? "" : "secondary"}
            onClick={() => setTab(t)}
          >
            {t === "files" ? "Files" : "Diff"}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === "files" ? (
          <FileBrowser client={client} image={image.uuid} />
        ) : (
          <DiffPanel client={client} image={image.uuid} parent={image.parent_uuid} />
        )}
      </div>
    </section>
  );
}
