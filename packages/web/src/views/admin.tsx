import type { ViewProps } from "../routes.js";

/** Placeholder: filled in by the Admin view's owner. */
export function AdminView(_props: ViewProps) {
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Admin</h1>
      <p class="muted">Not built yet.</p>
    </section>
  );
}
