/**
 * Layer decompression as a Transform: gzip via node:zlib; zstd via zlib when Node has it
 * (22.15+), else the `zstd` binary (≈6× faster than fzstd here, and it refuses frames that
 * ask for windows above 128 MiB, where fzstd would allocate up to 2 GiB on a hostile header),
 * else fzstd in-process. Corrupt input fails the stream with AppError unprocessable.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { PassThrough, type Readable, Transform, type TransformCallback, type Writable } from "node:stream";
import zlib from "node:zlib";
import { Decompress } from "fzstd";
import { AppError, unprocessable } from "../core/errors.js";
import { type Compression, layerCompression } from "./media-types.js";

export type ZstdImplementation = "auto" | "zlib" | "spawn" | "fzstd";

interface DecompressOptions {
  readonly zstd?: ZstdImplementation | undefined;
}

/** A Transform that turns a layer blob of `mediaType` into its uncompressed tar bytes. */
export function decompress(mediaType: string, options: DecompressOptions = {}): Transform {
  return createDecompressor(layerCompression(mediaType), options);
}

export function createDecompressor(compression: Compression, options: DecompressOptions = {}): Transform {
  switch (compression) {
    case "none":
      return new PassThrough();
    case "gzip":
      return wrapErrors(zlib.createGunzip({ chunkSize: 64 * 1024 }), "gzip");
    case "zstd":
      return zstdDecompressor(options.zstd ?? "auto");
  }
}

type ZlibWithZstd = typeof zlib & { createZstdDecompress?: () => Transform };

/** Which zstd decoder "auto" picks on this host. */
export function zstdImplementation(): Exclude<ZstdImplementation, "auto"> {
  if (typeof (zlib as ZlibWithZstd).createZstdDecompress === "function") return "zlib";
  if (zstdBinary() !== undefined) return "spawn";
  return "fzstd";
}

function zstdDecompressor(impl: ZstdImplementation): Transform {
  const chosen = impl === "auto" ? zstdImplementation() : impl;
  if (chosen === "zlib") {
    const create = (zlib as ZlibWithZstd).createZstdDecompress;
    if (create) return wrapErrors(create(), "zstd");
  }
  if (chosen === "spawn" || chosen === "zlib") {
    const bin = zstdBinary();
    if (bin !== undefined) return new SpawnedZstd(bin);
  }
  return new FzstdTransform();
}

let zstdPath: string | null | undefined;
function zstdBinary(): string | undefined {
  if (zstdPath === undefined) {
    zstdPath = null;
    for (const dir of (process.env["PATH"] ?? "/usr/bin:/bin").split(":")) {
      if (!dir.startsWith("/")) continue;
      try {
        accessSync(`${dir}/zstd`, constants.X_OK);
        zstdPath = `${dir}/zstd`;
        break;
      } catch {}
    }
  }
  return zstdPath ?? undefined;
}

function wrapErrors(t: Transform, what: string): Transform {
  // zlib errors carry codes like Z_DATA_ERROR; the public message stays generic.
  const origDestroy = t._destroy.bind(t);
  t._destroy = (err, cb) => origDestroy(err && !(err instanceof AppError) ? corrupt(what, err) : err, cb);
  return t;
}

function corrupt(what: string, cause: unknown): AppError {
  return unprocessable(`layer is not valid ${what} data`, { cause });
}

class FzstdTransform extends Transform {
  readonly #d = new Decompress((chunk) => {
    // fzstd hands out fresh arrays per block, so wrapping without a copy is safe.
    if (chunk.length > 0) this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
  });

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#d.push(chunk);
      cb();
    } catch (err) {
      cb(corrupt("zstd", err));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#d.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(corrupt("zstd", err));
    }
  }
}

/** `zstd -dc` as a Transform, with backpressure both ways and the exit status as the verdict. */
class SpawnedZstd extends Transform {
  readonly #child: ChildProcessByStdio<Writable, Readable, Readable>;
  #stderr = "";
  #exit: Promise<number | null>;

  constructor(bin: string) {
    super();
    this.#child = spawn(bin, ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
    this.#exit = new Promise((resolve) => {
      this.#child.once("close", (code) => resolve(code));
      this.#child.once("error", () => resolve(-1));
    });
    // Fail early on corrupt input instead of waiting for the writer to finish.
    void this.#exit.then((code) => {
      if (code !== 0 && !this.destroyed)
        this.destroy(corrupt("zstd", new Error(`zstd exited ${code}: ${this.#stderr.trim()}`)));
    });
    this.#child.stdout.on("data", (c: Buffer) => {
      if (!this.push(c)) this.#child.stdout.pause();
    });
    this.#child.stderr.on("data", (c: Buffer) => {
      if (this.#stderr.length < 2048) this.#stderr += c.toString("utf8");
    });
    // EPIPE when zstd quits early on bad input: the exit status reports it.
    this.#child.stdin.on("error", () => {});
  }

  override _read(size: number): void {
    this.#child.stdout.resume();
    super._read(size);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#child.stdin.write(chunk)) {
      cb();
      return;
    }
    // zstd may die instead of draining (bad input): continue either way, the exit status decides.
    let called = false;
    const go = () => {
      if (called) return;
      called = true;
      this.#child.stdin.off("drain", go);
      cb();
    };
    this.#child.stdin.once("drain", go);
    void this.#exit.then(go);
  }

  override _flush(cb: TransformCallback): void {
    this.#child.stdin.end();
    this.#exit.then(
      (code) =>
        code === 0 ? cb() : cb(corrupt("zstd", new Error(`zstd exited ${code}: ${this.#stderr.trim()}`))),
      (err: unknown) => cb(corrupt("zstd", err)),
    );
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.#child.exitCode === null) this.#child.kill("SIGKILL");
    cb(err);
  }
}
