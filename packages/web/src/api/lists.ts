import type { ApiClient } from "./client.js";
import type { Image, OperationSummary } from "./types.js";

/** The API's largest page. */
const PAGE = 1000;

/**
 * Every image of the project, page by page (1,000 a request), up to `max`. Pages are by offset:
 * an image created while paging may shift one page boundary, which a reload corrects.
 */
export async function allImages(client: ApiClient, max = 20_000, signal?: AbortSignal): Promise<Image[]> {
  const out: Image[] = [];
  const seen = new Set<string>();
  for (let offset = 0; offset < max; offset += PAGE) {
    const { images } = await client.json<{ images: Image[] }>("/images", {
      query: { limit: PAGE, offset },
      ...(signal === undefined ? {} : { signal }),
    });
    for (const i of images) {
      if (seen.has(i.uuid)) continue;
      seen.add(i.uuid);
      out.push(i);
    }
    if (images.length < PAGE) break;
  }
  return out;
}

/** The newest runs (instance operations), up to `max`: they mark failed and unchanged runs. */
export async function recentRuns(
  client: ApiClient,
  max = 5_000,
  signal?: AbortSignal,
): Promise<OperationSummary[]> {
  const out: OperationSummary[] = [];
  for (let offset = 0; offset < max; offset += PAGE) {
    const page = await client.json<OperationSummary[]>("/operations", {
      query: { limit: PAGE, offset, kind: "instance" },
      ...(signal === undefined ? {} : { signal }),
    });
    out.push(...page);
    if (page.length < PAGE) break;
  }
  return out;
}
