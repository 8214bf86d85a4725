import { useEffect, useState } from "preact/hooks";
import { type AdminApi, bytes, messageOf, type UsageTotals, when } from "./admin-api.js";

/** The server's last storage usage pass, in totals (per project: the projects table). */
export function StoragePanel({ api }: { api: AdminApi }) {
  const [usage, setUsage] = useState<{ computed_at: string; totals: UsageTotals } | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    api.usage().then(setUsage, (e: unknown) => setError(messageOf(e)));
  }, [api]);
  return (
    <section aria-labelledby="admin-storage" class="panel">
      <h2 id="admin-storage">Storage</h2>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {usage === undefined ? (
        error === undefined && <p class="muted">Loading…</p>
      ) : (
        <dl class="admin-figures" data-testid="storage-totals">
          <div>
            <dt>Layers</dt>
            <dd>
              {usage.totals.layers} ({bytes(usage.totals.layer_bytes)})
            </dd>
          </div>
          <div>
            <dt>Unreferenced layers</dt>
            <dd>
              {usage.totals.unreferenced_layers} ({bytes(usage.totals.unreferenced_layer_bytes)})
            </dd>
          </div>
          <div>
            <dt>Uploaded blobs</dt>
            <dd>
              {usage.totals.blobs} ({bytes(usage.totals.blob_bytes)})
            </dd>
          </div>
          <div>
            <dt>Images</dt>
            <dd>{usage.totals.images}</dd>
          </div>
          <div>
            <dt>Computed</dt>
            <dd>{when(usage.computed_at)} UTC</dd>
          </div>
        </dl>
      )}
    </section>
  );
}
