import type { ViewProps } from "../routes.js";

/** Placeholder: filled in by the Operations view's owner. */
export function OperationsView(_props: ViewProps) {
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Operations</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
