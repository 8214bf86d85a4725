import type { ContentStore, ListedBlob } from "../../content/content-store.js";
import { hexOf } from "../../core/digest.js";
import type { MetadataStore } from "../../metadata/metadata-store.js";
import { crashPoint } from "./crash-point.js";
import { inParallel } from "./in-parallel.js";

/**
 * Blobs no file row names. An upload commits its blob before its row, so a blob is removed only
 * past the grace (a re-upload of the same bytes writes the blob again, so it looks young) and
 * after one more look for a row just before the delete.
 */
export async function sweepBlobs(
  store: MetadataStore,
  content: ContentStore,
  o: { dryRun: boolean; graceMs: number },
): Promise<{ removed: number; bytes: number }> {
  const named = await store.gc.fileDigests();
  const now = Date.now();
  const out = { removed: 0, bytes: 0 };
  const unnamed: ListedBlob[] = [];
  for await (const b of content.list())
    if (!named.has(hexOf(b.digest)) && now - b.modifiedAt >= o.graceMs) unnamed.push(b);
  await inParallel(unnamed, 16, async (b) => {
    if (await store.gc.fileDigestNamed(hexOf(b.digest))) return;
    out.removed++;
    out.bytes += b.size;
    if (!o.dryRun) {
      await content.delete(b.digest);
      crashPoint("blob");
    }
  });
  return out;
}
