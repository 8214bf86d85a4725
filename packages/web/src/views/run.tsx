import type { ViewProps } from "../routes.js";

/** Placeholder: filled in by the Run view's owner. */
export function RunView(_props: ViewProps) {
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Run</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
