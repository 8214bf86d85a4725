// Offset pagination (contree-api.md 1.6): pages of up to 1000, the end is the first short page.
// Offsets are not snapshots, so rows may shift between pages; that is the API's contract, not ours.

import { abortErrorFrom } from "./deadline.js";
import type { RequestOptions } from "./http.js";

export interface PageOptions extends RequestOptions {
  /** Rows per request, 1..1000. Default 1000. */
  pageSize?: number;
  /** Stop after this many items in total. */
  max?: number;
  /** Start offset. Default 0. */
  offset?: number;
}

export type FetchPage<T> = (limit: number, offset: number, opts: RequestOptions) => Promise<T[]>;

export class Paginator<T> implements AsyncIterable<T> {
  private readonly pageSize: number;

  /** @internal Listing methods (`images.list()`, …) build it. */
  constructor(
    private readonly fetchPage: FetchPage<T>,
    private readonly options: PageOptions = {},
  ) {
    this.pageSize = Math.min(1000, Math.max(1, Math.floor(options.pageSize ?? 1000)));
  }

  /** Yields whole pages. */
  async *pages(): AsyncGenerator<T[], void, undefined> {
    const { pageSize: _p, max, offset: start, ...request } = this.options;
    let offset = start ?? 0;
    let remaining = max ?? Number.POSITIVE_INFINITY;
    while (remaining > 0) {
      if (request.signal?.aborted) throw abortErrorFrom(request.signal.reason);
      const page = await this.fetchPage(this.pageSize, offset, request);
      const take = page.length > remaining ? page.slice(0, remaining) : page;
      if (take.length > 0) yield take;
      remaining -= take.length;
      if (page.length < this.pageSize) return;
      offset += page.length;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page;
  }

  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const item of this) out.push(item);
    return out;
  }
}
