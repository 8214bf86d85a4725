import type { ViewProps } from "../routes.js";

/** Placeholder: filled in by the Operation view's owner. */
export function OperationView(_props: ViewProps) {
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Operation</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
