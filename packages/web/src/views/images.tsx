import { useEffect, useState } from "preact/hooks";
import type { Image } from "../api/types.js";
import { useConsole } from "../context.js";
import type { ViewProps } from "../routes.js";

export function ImagesView(_props: ViewProps) {
  const { client } = useConsole();
  const [images, setImages] = useState<Image[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    client.json<{ images: Image[] }>("/images", { query: { limit: 1000 } }).then(
      (r) => setImages(r.images),
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    );
  }, [client]);
  return (
    <section aria-labelledby="view-title">
      <h1 id="view-title">Images</h1>
      {error !== undefined && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {images === undefined ? (
        <p class="muted">Loading…</p>
      ) : (
        <p data-testid="image-count">{images.length} images</p>
      )}
    </section>
  );
}
