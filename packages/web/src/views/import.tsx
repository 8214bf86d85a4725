import type { ViewProps } from "../routes.js";

/** Placeholder: filled in by the Import view's owner. */
export function ImportView(_props: ViewProps) {
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Import</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
