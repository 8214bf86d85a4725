import { type FileHandle, mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { internal } from "../../core/errors.js";
import { isUuid } from "../../core/ids.js";
import { STREAM_NAME } from "../output-ref.js";
import type { OutputFile, OutputReader, OutputStore } from "../output-store.js";

/** Streams as files `<root>/<operation id>/<spid>.<stdout|stderr>`. */
export class LocalOutputStore implements OutputStore {
  private constructor(private readonly root: string) {}

  static async open(root: string): Promise<LocalOutputStore> {
    await mkdir(root, { recursive: true, mode: 0o700 });
    return new LocalOutputStore(root);
  }

  private dir(operationId: string): string {
    // Ids come from our own rows, but a path is built from them: refuse anything else.
    if (!isUuid(operationId)) throw internal("invalid operation id for output");
    return join(this.root, operationId);
  }

  private path(operationId: string, stream: string): string {
    if (!STREAM_NAME.test(stream)) throw internal("invalid output stream name");
    return join(this.dir(operationId), stream);
  }

  async create(operationId: string, name: string): Promise<OutputFile> {
    const p = this.path(operationId, name);
    const dir = this.dir(operationId);
    const made = await mkdir(dir, { recursive: true, mode: 0o700 });
    const fh = await open(p, "w", 0o600);
    try {
      // The file's name (and a new operation directory's) must survive a crash like its bytes:
      // seal() syncs the data, this the directory entries.
      if (made !== undefined) await syncDir(this.root);
      await syncDir(dir);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    return new LocalOutputFile(fh);
  }

  async *read(
    operationId: string,
    ref: { stream: string; offset: number; length: number },
    chunkBytes: number,
  ): AsyncIterable<Buffer> {
    const reader = this.reader(operationId);
    try {
      yield* reader.read(ref, chunkBytes);
    } finally {
      await reader.close();
    }
  }

  reader(operationId: string): OutputReader {
    const handles = new Map<string, Promise<FileHandle | null>>();
    const handle = (stream: string): Promise<FileHandle | null> => {
      let h = handles.get(stream);
      if (!h) {
        h = open(this.path(operationId, stream), "r").catch((err: unknown) => {
          if (isNoEnt(err)) return null;
          throw err;
        });
        handles.set(stream, h);
      }
      return h;
    };
    return {
      async *read(ref, chunkBytes) {
        const fh = await handle(ref.stream);
        if (fh === null) return;
        let pos = ref.offset;
        const end = ref.offset + ref.length;
        while (pos < end) {
          const want = Math.min(chunkBytes, end - pos);
          const buf = Buffer.allocUnsafe(want);
          const { bytesRead } = await fh.read(buf, 0, want, pos);
          if (bytesRead === 0) return;
          pos += bytesRead;
          yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
        }
      },
      async close() {
        const all = [...handles.values()];
        handles.clear();
        for (const h of all) await (await h.catch(() => null))?.close();
      },
    };
  }

  async has(operationId: string): Promise<boolean> {
    try {
      await stat(this.dir(operationId));
      return true;
    } catch (err) {
      if (isNoEnt(err)) return false;
      throw err;
    }
  }

  async remove(operationId: string): Promise<void> {
    await rm(this.dir(operationId), { recursive: true, force: true });
  }

  async reclaim(exists: (operationId: string) => Promise<boolean>): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.root)) {
      if (isUuid(name) && (await exists(name))) continue;
      await rm(join(this.root, name), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }
}

class LocalOutputFile implements OutputFile {
  size = 0;
  private closed = false;

  constructor(private readonly fh: FileHandle) {}

  async append(bytes: Buffer): Promise<void> {
    if (this.closed) throw internal("output stream is sealed");
    let off = 0;
    while (off < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, off, bytes.length - off, this.size + off);
      off += bytesWritten;
    }
    this.size += bytes.length;
  }

  async seal(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }
}

async function syncDir(path: string): Promise<void> {
  const d = await open(path, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

function isNoEnt(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: string }).code === "ENOENT";
}
