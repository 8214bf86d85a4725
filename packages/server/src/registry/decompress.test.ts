import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { type Digest, sha256Of } from "../core/digest.js";
import { AppError } from "../core/errors.js";
import { createDecompressor, decompress, type ZstdImplementation, zstdImplementation } from "./decompress.js";
import { layerCompression, sniffCompression } from "./media-types.js";
import { VerifyingStream } from "./verify-stream.js";

// Compressible but not trivial: repeated random words.
const words = Array.from({ length: 512 }, () => randomBytes(6).toString("hex"));
const plain = Buffer.from(
  Array.from({ length: 200_000 }, (_, i) => words[(i * 7919) % words.length]).join(" "),
);
const zstdBytes = execFileSync("zstd", ["-q", "-3", "-c"], { input: plain, maxBuffer: 64 * 1024 * 1024 });

async function run(src: Buffer, t: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  const chunks = Array.from({ length: Math.ceil(src.length / 7000) }, (_, i) =>
    src.subarray(i * 7000, (i + 1) * 7000),
  );
  await pipeline(
    Readable.from(chunks),
    t,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

async function errorOf(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error("did not fail");
}

describe("decompress", () => {
  it("maps media types", () => {
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd");
    expect(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar")).toBe("none");
    expect(() => decompress("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")).toThrow(/foreign/);
    expect(() => decompress("application/x-rar")).toThrow(
      expect.objectContaining({ kind: "invalid_argument" }),
    );
    expect(sniffCompression(gzipSync(Buffer.from("x")))).toBe("gzip");
    expect(sniffCompression(zstdBytes)).toBe("zstd");
    expect(sniffCompression(Buffer.from("ustar"))).toBe("none");
    expect(["zlib", "spawn", "fzstd"]).toContain(zstdImplementation());
  });

  it("gunzips", async () => {
    const got = await run(gzipSync(plain), decompress("application/vnd.oci.image.layer.v1.tar+gzip"));
    expect(got.equals(plain)).toBe(true);
  });

  it.each(["spawn", "fzstd", "auto"] satisfies ZstdImplementation[])("unzstds with %s", async (impl) => {
    const got = await run(zstdBytes, createDecompressor("zstd", { zstd: impl }));
    expect(sha256Of(got)).toBe(sha256Of(plain));
  });

  it.each(["spawn", "fzstd"] satisfies ZstdImplementation[])(
    "fails corrupt zstd with %s as unprocessable",
    async (impl) => {
      const bad = Buffer.from(zstdBytes);
      bad.fill(0x55, 100, 400);
      const e = await errorOf(run(bad, createDecompressor("zstd", { zstd: impl })));
      expect(e.kind).toBe("unprocessable");
      const truncated = zstdBytes.subarray(0, zstdBytes.length - 50);
      expect((await errorOf(run(truncated, createDecompressor("zstd", { zstd: impl })))).kind).toBe(
        "unprocessable",
      );
    },
  );

  it("fails corrupt gzip as unprocessable", async () => {
    const bad = gzipSync(plain);
    bad.fill(0, 50, 200);
    expect((await errorOf(run(bad, createDecompressor("gzip")))).message).toMatch(/not valid gzip/);
  });
});

describe("VerifyingStream", () => {
  const data = randomBytes(100_000);
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;

  it("passes matching bytes", async () => {
    expect((await run(data, new VerifyingStream({ digest, size: data.length }, "blob"))).equals(data)).toBe(
      true,
    );
  });

  it("fails on digest and size mismatches", async () => {
    const flipped = Buffer.from(data);
    flipped[5] = (flipped[5] ?? 0) ^ 1;
    expect(
      (await errorOf(run(flipped, new VerifyingStream({ digest, size: data.length }, "blob")))).message,
    ).toMatch(/digest mismatch/);
    const short = await errorOf(
      run(data.subarray(1), new VerifyingStream({ digest, size: data.length }, "blob")),
    );
    expect(short).toMatchObject({ kind: "data_loss", message: expect.stringMatching(/size mismatch/) });
    const long = await errorOf(run(data, new VerifyingStream({ digest, size: 10 }, "blob")));
    expect(long.message).toMatch(/size mismatch.*more than/);
  });
});
