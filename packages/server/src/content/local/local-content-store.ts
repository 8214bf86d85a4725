import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Digest, hexOf, sha256 } from "../../core/digest.js";
import { AppError, dataLoss, notFound, payloadTooLarge, toAppError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import type { BlobInfo, ContentStore, IngestOptions, ListedBlob } from "../content-store.js";

/** Blobs as files `<root>/blobs/sha256/<hex>`; unfinished ingests under `<root>/ingest/`. */
export class LocalContentStore implements ContentStore {
  private readonly blobDir: string;
  private readonly ingestDir: string;

  private constructor(root: string) {
    this.blobDir = join(root, "blobs", "sha256");
    this.ingestDir = join(root, "ingest");
  }

  static async open(root: string): Promise<LocalContentStore> {
    const s = new LocalContentStore(root);
    await mkdir(s.blobDir, { recursive: true });
    await mkdir(s.ingestDir, { recursive: true });
    return s;
  }

  localPath(digest: Digest): string {
    return join(this.blobDir, hexOf(digest));
  }

  async ingest(source: Readable, o: IngestOptions = {}): Promise<BlobInfo> {
    const tmp = join(this.ingestDir, newId());
    const hash = sha256();
    let size = 0;
    const max = o.maxBytes ?? Number.POSITIVE_INFINITY;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > max) {
          cb(payloadTooLarge(`upload exceeds the limit of ${max} bytes`));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    let out: WriteStream | undefined;
    try {
      out = createWriteStream(tmp, { flags: "wx" });
      // The source stays the caller's: a refused upload must not reset the client's connection.
      const feed = new PassThrough();
      source.pipe(feed);
      source.once("error", (err) => feed.destroy(err));
      try {
        await pipeline(feed, meter, out, o.signal ? { signal: o.signal } : {});
      } finally {
        source.unpipe(feed);
      }
      const digest = `sha256:${hash.digest("hex")}` as Digest;
      if (o.expected) {
        if (o.expected.size !== undefined && o.expected.size !== size) {
          throw dataLoss(`size mismatch: expected ${o.expected.size} bytes, got ${size}`);
        }
        if (o.expected.digest !== digest)
          throw dataLoss(`digest mismatch: expected ${o.expected.digest}, got ${digest}`);
      }
      await fsyncPath(tmp);
      await rename(tmp, this.localPath(digest));
      await fsyncPath(this.blobDir);
      return { digest, size };
    } catch (err) {
      // The file is opened asynchronously: an ingest aborted at once may see it created after an
      // early rm. Wait until the stream has let go of it.
      if (out && !out.closed) {
        const o = out;
        await new Promise<void>((r) => {
          o.once("close", () => r());
          o.destroy();
        });
      }
      await rm(tmp, { force: true });
      throw err instanceof AppError ? err : toAppError(err);
    }
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.localPath(digest));
      return { digest, size: st.size };
    } catch (err) {
      if (isNoEnt(err)) return undefined;
      throw err;
    }
  }

  async read(digest: Digest, o: { start?: number; end?: number } = {}): Promise<Readable> {
    const p = this.localPath(digest);
    const fh = await open(p, "r").catch((err: unknown) => {
      throw isNoEnt(err) ? notFound(`blob ${digest} not found`) : err;
    });
    // fs streams reject start > end and would leak the handle; an empty range is no bytes.
    if (o.end !== undefined && o.end <= (o.start ?? 0)) {
      await fh.close();
      return Readable.from([]);
    }
    const opts: { start?: number; end?: number } = {};
    if (o.start !== undefined) opts.start = o.start;
    if (o.end !== undefined) opts.end = o.end - 1;
    return fh.createReadStream({ ...opts, autoClose: true });
  }

  async delete(digest: Digest): Promise<void> {
    await rm(this.localPath(digest), { force: true });
  }

  async *list(): AsyncIterable<ListedBlob> {
    const digests = (await readdir(this.blobDir))
      .filter((name) => /^[0-9a-f]{64}$/.test(name))
      .map((name) => `sha256:${name}` as Digest);
    // 64 stats at a time: one by one they are thread-pool latency
    for (let i = 0; i < digests.length; i += 64) {
      const part = digests.slice(i, i + 64);
      const sts = await Promise.all(
        part.map((d) =>
          stat(this.localPath(d)).catch((err: unknown) => {
            if (isNoEnt(err)) return undefined;
            throw err;
          }),
        ),
      );
      for (let j = 0; j < part.length; j++) {
        const st = sts[j];
        if (st) yield { digest: part[j] as Digest, size: st.size, modifiedAt: st.mtimeMs };
      }
    }
  }

  async reclaim(): Promise<number> {
    const names = await readdir(this.ingestDir);
    await Promise.all(names.map((n) => rm(join(this.ingestDir, n), { force: true, recursive: true })));
    return names.length;
  }
}

async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function isNoEnt(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: string }).code === "ENOENT";
}
