import type { ViewProps } from "../routes.js";

export function ImageView({ params }: ViewProps) {
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Image {params["uuid"]}</h1>
    </section>
  );
}
