/**
 * Inspect: read an image's filesystem without starting a sandbox (contree-api §2.8). Reads go
 * through the reader of the image's view (the snapshotter's `view(image)`: a MergedView over its
 * mount chain, never a host path); readers and the image's user/group names are cached per view
 * key (images are immutable), so a listing or a small download costs a few lstat calls. Every
 * path is normalised and confined to the image root by the view.
 *
 *   const inspect = new InspectService();
 *   const fs = await snapshots.view(img);      // leased until fs.release()
 *   await inspect.list(fs, "/etc");            // { path: "/etc", files: FileItem[] }
 *   const { stream, size } = await inspect.openFile(fs, "/etc/passwd");
 */
import type { Readable } from "node:stream";
import { isKind, notFound, resourceExhausted, unprocessable } from "../core/errors.js";
import { MergedView } from "../layers/merged-view.js";
import { archiveView } from "../layers/tar-writer.js";
import { type Accounts, readAccounts } from "./accounts.js";
import {
  DEFAULT_DIFF_LIMITS,
  type DiffEntry,
  type DiffLimits,
  type DiffOutcome,
  type DiffRequest,
  diffViews,
} from "./diff.js";
import { type FileItem, fileItem, listingText, listingTextChunks } from "./file-item.js";
import { DEFAULT_GREP_LIMITS, type GrepLimits, type GrepRequest, type GrepResult, grepView } from "./grep.js";
import { RegexWorkerPool } from "./regex-worker-pool.js";

export type { DiffEntry, DiffOutcome } from "./diff.js";
export type { FileItem } from "./file-item.js";
export type { CaseMode } from "./rust-regex.js";

/** An image's filesystem as inspect reads it (the snapshotter's ImageView satisfies it). */
export interface ImageFs {
  readonly id: string;
  /** Equal keys read equal filesystems (the view's reader is made once per key). */
  readonly key: string;
  reader(): MergedView;
}

/** An ImageFs straight over layer directories, top-most first (tests, tools). */
export function layerFs(id: string, layers: readonly string[]): ImageFs {
  return { id, key: `${id}\0${layers.join("\0")}`, reader: () => new MergedView(layers) };
}

export interface DirectoryListing {
  path: string;
  files: FileItem[];
}

interface InspectOptions {
  /** Images whose views are kept (default 64). */
  viewCacheSize?: number;
  /** FileItems kept in cached directory listings, over all images (default 100 000). */
  listingCacheEntries?: number;
  grep?: Partial<GrepLimits>;
  diff?: Partial<DiffLimits>;
  /** Regex worker threads (default 2). */
  grepWorkers?: number;
  /** Searches one project may run at once; more get a 429 (default 2). */
  grepPerProject?: number;
}

const READLINK_BATCH = 64;

interface CachedImage {
  key: string;
  view: MergedView;
  accounts?: Promise<Accounts>;
}

export class InspectService {
  private readonly views = new Map<string, CachedImage>();
  /** Directory listings: images never change, so a listing stays true for the image's life. */
  private readonly listings = new Map<string, DirectoryListing>();
  private listedEntries = 0;
  private readonly maxListedEntries: number;
  private readonly cacheSize: number;
  private readonly grepLimits: GrepLimits;
  private readonly diffLimits: DiffLimits;
  private readonly pool: RegexWorkerPool;
  private readonly grepPerProject: number;
  private readonly grepsRunning = new Map<string, number>();

  constructor(opts: InspectOptions = {}) {
    this.cacheSize = Math.max(1, opts.viewCacheSize ?? 64);
    this.maxListedEntries = Math.max(0, opts.listingCacheEntries ?? 100_000);
    this.grepLimits = { ...DEFAULT_GREP_LIMITS, ...opts.grep };
    this.diffLimits = { ...DEFAULT_DIFF_LIMITS, ...opts.diff };
    this.pool = new RegexWorkerPool(opts.grepWorkers ?? 2);
    this.grepPerProject = Math.max(1, opts.grepPerProject ?? 2);
  }

  /** `{path, files}` of a directory; 404 if missing, 422 if not a directory. */
  async list(img: ImageFs, path: string | undefined): Promise<DirectoryListing> {
    const c = await this.image(img);
    const norm = MergedView.normalize(path ?? "/");
    const key = `${c.key}\0${norm}`;
    const hit = this.listings.get(key);
    if (hit) {
      this.listings.delete(key);
      this.listings.set(key, hit);
      return hit;
    }
    const entries = await c.view.list(norm);
    const accounts = await this.accounts(c);
    // readlink round trips dominate a directory of symlinks (/bin): run them side by side
    const targets: string[] = [];
    for (let i = 0; i < entries.length; i += READLINK_BATCH) {
      const batch = entries.slice(i, i + READLINK_BATCH);
      targets.push(
        ...(await Promise.all(
          batch.map((st) => (st.type === "symlink" ? c.view.readlink(st.path).catch(() => "") : "")),
        )),
      );
    }
    const files = entries.map((st, i) =>
      fileItem(st.path.slice(st.path.lastIndexOf("/") + 1), st, accounts, targets[i]!),
    );
    const listing: DirectoryListing = { path: norm, files };
    this.remember(key, listing);
    return listing;
  }

  /** The `ls -l`-like text form of a listing. */
  listText(listing: DirectoryListing): string {
    return listingText(listing.files);
  }

  /** The same text in pieces of `rowsPerPiece` rows (for directories too big for one string). */
  listTextChunks(listing: DirectoryListing, rowsPerPiece: number): Iterable<string> {
    return listingTextChunks(listing.files, rowsPerPiece);
  }

  /** A regular file (symlinks followed inside the image) opened for streaming. */
  async openFile(img: ImageFs, path: string): Promise<{ stream: Readable; size: number }> {
    const c = await this.image(img);
    return fileErrors(() => c.view.openRead(MergedView.normalize(path)));
  }

  /** What a HEAD of a download answers: the size of the regular file at `path`. */
  async statFile(img: ImageFs, path: string): Promise<{ size: number }> {
    const c = await this.image(img);
    const st = await fileErrors(() => c.view.stat(MergedView.normalize(path)));
    if (st.type === "dir") throw unprocessable("is a directory");
    if (st.type !== "file") throw unprocessable("not a regular file");
    return { size: st.size };
  }

  /** Throws 404 `path not found` unless `path` exists (not followed if it is a symlink). */
  async checkPath(img: ImageFs, path: string): Promise<string> {
    const c = await this.image(img);
    const norm = MergedView.normalize(path);
    try {
      await c.view.lstat(norm);
    } catch (err) {
      if (isKind(err, "not_found") || isKind(err, "unprocessable")) throw notFound("path not found");
      throw err;
    }
    return norm;
  }

  /** A PAX tar of `path` and everything below it, member names relative to "/". */
  async archive(img: ImageFs, path: string): Promise<Readable> {
    const norm = await this.checkPath(img, path);
    const c = await this.image(img);
    return archiveView(c.view, norm);
  }

  /**
   * A search on behalf of `project`: each project runs at most `grepPerProject` at once (its
   * walks cost host I/O); a regex worker is held only while it matches one batch of files.
   */
  async grep(img: ImageFs, req: GrepRequest, project: string): Promise<GrepResult> {
    const running = this.grepsRunning.get(project) ?? 0;
    if (running >= this.grepPerProject)
      throw resourceExhausted(
        `too many searches running in this project (at most ${this.grepPerProject}); retry shortly`,
        { retryAfter: 1 },
      );
    this.grepsRunning.set(project, running + 1);
    try {
      const c = await this.image(img);
      return await grepView(c.view, req, this.grepLimits, this.pool);
    } finally {
      const left = (this.grepsRunning.get(project) ?? 1) - 1;
      if (left <= 0) this.grepsRunning.delete(project);
      else this.grepsRunning.set(project, left);
    }
  }

  /**
   * What changed from `older` to `newer` (see diff.ts), entries produced lazily; `outcome` is
   * final once they are consumed. `upper`: the layers one chain has on top of the other.
   */
  async diff(
    older: ImageFs,
    newer: ImageFs,
    req: DiffRequest,
  ): Promise<{ entries: AsyncGenerator<DiffEntry>; outcome: DiffOutcome }> {
    const a = await this.image(older);
    const b = await this.image(newer);
    return diffViews(a.view, b.view, req, this.diffLimits);
  }

  async close(): Promise<void> {
    await this.pool.close();
    this.views.clear();
    this.listings.clear();
    this.listedEntries = 0;
  }

  private async image(img: ImageFs): Promise<CachedImage> {
    // The view's key holds the mount chain: compaction may give an image a new, shorter chain.
    const key = img.key;
    const hit = this.views.get(key);
    if (hit) {
      this.views.delete(key);
      this.views.set(key, hit);
      return hit;
    }
    const entry: CachedImage = { key, view: img.reader() };
    this.views.set(key, entry);
    while (this.views.size > this.cacheSize) this.views.delete(this.views.keys().next().value as string);
    return entry;
  }

  private remember(key: string, listing: DirectoryListing): void {
    const n = listing.files.length + 1;
    if (n > this.maxListedEntries) return;
    const old = this.listings.get(key);
    if (old) this.listedEntries -= old.files.length + 1;
    this.listings.set(key, listing);
    this.listedEntries += n;
    for (const [k, l] of this.listings) {
      if (this.listedEntries <= this.maxListedEntries) break;
      this.listings.delete(k);
      this.listedEntries -= l.files.length + 1;
    }
  }

  private accounts(c: CachedImage): Promise<Accounts> {
    c.accounts ??= readAccounts(c.view);
    return c.accounts;
  }
}

async function fileErrors<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (isKind(err, "not_found")) throw notFound("file not found");
    throw err;
  }
}
