import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../core/ids.js";
import { toStreamRepr } from "../core/stream-repr.js";
import { INLINE_OUTPUT_MAX, OutputCapture } from "../instances/output-capture.js";
import { StdinLog } from "../instances/stdin-log.js";
import { jsonStream } from "./json-stream.js";
import { LocalOutputStore } from "./local/local-output-store.js";
import { isOutputRef, type OutputRef } from "./output-ref.js";
import { chunkRepr, readRange, reprJson } from "./repr-chunks.js";

let root: string;
let store: LocalOutputStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "outputs-test-"));
  store = await LocalOutputStore.open(join(root, "outputs"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function text(gen: AsyncIterable<string>): Promise<string> {
  let s = "";
  for await (const p of gen) s += p;
  return s;
}

async function stored(op: string, name: string, bytes: Buffer): Promise<OutputRef> {
  const f = await store.create(op, name);
  await f.append(bytes);
  await f.seal();
  return { $out: { stream: name, offset: 0, length: bytes.length } };
}

describe("streamed documents with stored output", () => {
  it("equal JSON.stringify of the resolved document for binary and text, any size and chunking", async () => {
    const op = newId();
    const sizes = [0, 1, 2, 3, 4, 5, 47, 48 * 1024 - 1, 48 * 1024, 48 * 1024 + 1, 200_003];
    for (const size of sizes) {
      const bin = randomBytes(size);
      const txt = Buffer.from(
        `${Array.from({ length: size }, (_, i) => String.fromCharCode(32 + (i % 95))).join("")}\t"\\\n`,
        "latin1",
      );
      for (const [bytes, encoding] of [
        [bin, "base64"],
        [txt, "ascii"],
      ] as const) {
        const ref = { ...(await stored(op, "1.stdout", bytes)), encoding, truncated: size % 2 === 0 };
        const doc = {
          a: 1,
          metadata: { result: null, x: [1, undefined, "y"], out: ref, z: undefined },
          b: "é",
        };
        const want = JSON.stringify({
          ...doc,
          metadata: {
            ...doc.metadata,
            out: {
              value: bytes.toString(encoding === "ascii" ? "latin1" : "base64"),
              encoding,
              truncated: size % 2 === 0,
            },
          },
        });
        // Odd chunk sizes make base64 carry bytes between reads.
        for (const chunk of size <= 100 ? [7, 48 * 1024] : [4099, 48 * 1024]) {
          const got = await text(jsonStream(doc, (r) => reprJson(store, op, r, chunk)));
          expect(got.length).toBe(want.length);
          expect(got === want).toBe(true);
        }
      }
    }
  });

  it("a spawn's stdin keeps its text (UTF-8 split across chunks) and its close flag", async () => {
    const op = newId();
    const value = "héllo ✓ wörld ".repeat(5000);
    const ref = {
      ...(await stored(op, "1.input", Buffer.from(value))),
      encoding: "ascii" as const,
      close: false,
    };
    const got = JSON.parse(await text(reprJson(store, op, ref, 7)));
    expect(got).toEqual({ value, encoding: "ascii", close: false });
  });

  it("an event chunk reads back as the StreamRepr it was captured as", async () => {
    const op = newId();
    const bytes = Buffer.concat([Buffer.from("abc\n"), randomBytes(100)]);
    const ref = await stored(op, "2.stderr", bytes);
    const reader = store.reader(op);
    expect(await chunkRepr(reader, { $out: { ...ref.$out, offset: 0, length: 4 } })).toEqual(
      toStreamRepr(Buffer.from("abc\n")),
    );
    expect(await chunkRepr(reader, ref)).toEqual(toStreamRepr(bytes));
    expect(await chunkRepr(reader, { $out: { stream: "3.stdout", offset: 0, length: 4 } })).toEqual(
      toStreamRepr(Buffer.alloc(0)),
    );
    await reader.close();
  });
});

describe("stored output cut short by a crash", () => {
  it("a result over a stream shorter than its reference says truncated; a stored input refuses", async () => {
    const op = newId();
    const ref = await stored(op, "1.stdout", Buffer.from("abcdef"));
    const long = { $out: { ...ref.$out, length: 10 }, encoding: "ascii" as const };
    expect(JSON.parse(await text(reprJson(store, op, long)))).toEqual({
      value: "abcdef",
      encoding: "ascii",
      truncated: true,
    });
    const stdin = {
      $out: { stream: "1.input", offset: 0, length: 10 },
      encoding: "ascii" as const,
      close: true,
    };
    await stored(op, "1.input", Buffer.from("abc"));
    expect(JSON.parse(await text(reprJson(store, op, stdin)))).toEqual({
      value: "abc",
      encoding: "ascii",
      truncated: true,
      close: true,
    });
    await expect(readRange(store, op, stdin)).rejects.toMatchObject({ kind: "data_loss" });
    expect(await readRange(store, op, { $out: { ...stdin.$out, length: 3 } })).toEqual(Buffer.from("abc"));
  });
});

describe("LocalOutputStore", () => {
  it("reads ranges, yields what a short or missing stream has, refuses foreign names", async () => {
    const op = newId();
    const bytes = randomBytes(100_000);
    await stored(op, "1.stdout", bytes);
    const read = async (offset: number, length: number, stream = "1.stdout") => {
      const parts: Buffer[] = [];
      for await (const c of store.read(op, { stream, offset, length }, 4096)) {
        expect(c.length).toBeLessThanOrEqual(4096);
        parts.push(c);
      }
      return Buffer.concat(parts);
    };
    expect((await read(10, 50_000)).equals(bytes.subarray(10, 50_010))).toBe(true);
    expect((await read(90_000, 50_000)).equals(bytes.subarray(90_000))).toBe(true);
    expect((await read(0, 10, "1.stderr")).length).toBe(0);
    expect(await store.has(op)).toBe(true);
    expect(await store.has(newId())).toBe(false);
    await expect(store.create(op, "../x")).rejects.toThrow();
    await expect(store.create("../../etc", "1.stdout")).rejects.toThrow();
    expect(isOutputRef({ $out: { stream: "../x", offset: 0, length: 1 } })).toBe(false);
  });

  it("reclaim removes the streams of unknown operations and anything else, keeps known ones", async () => {
    const keep = newId();
    const gone = newId();
    await stored(keep, "1.stdout", Buffer.from("a"));
    await stored(gone, "1.stdout", Buffer.from("b"));
    await mkdir(join(root, "outputs", "junk"));
    await writeFile(join(root, "outputs", "stray"), "x");
    expect(await store.reclaim(async (id) => id === keep)).toBe(3);
    expect(await readdir(join(root, "outputs"))).toEqual([keep]);
  });
});

describe("OutputCapture", () => {
  const capture = (limit: number) => {
    const src = new PassThrough();
    const events: Array<Record<string, unknown>> = [];
    const op = newId();
    const cap = new OutputCapture(
      src,
      limit,
      { name: "1.stdout", create: () => store.create(op, "1.stdout") },
      async (d) => {
        events.push(d);
        // A slow database: writes that arrive meanwhile must be joined into the next event.
        await new Promise((r) => setImmediate(r));
      },
    );
    return { src, events, cap, op };
  };

  it("small output stays inline; many tiny writes become few events", async () => {
    const { src, events, cap, op } = capture(1 << 20);
    for (let i = 0; i < 5000; i++) src.write("x");
    src.end();
    const r = await cap.done;
    expect(r.repr).toEqual({ value: "x".repeat(5000), encoding: "ascii", truncated: false });
    expect(events.length).toBeLessThan(100);
    expect(events.every((e) => !isOutputRef(e))).toBe(true);
    expect(await store.has(op)).toBe(false);
  });

  it("large output spills whole to the store: events refer to contiguous ranges, the result to all of it", async () => {
    const { src, events, cap, op } = capture(300_000);
    const bytes = randomBytes(400_000);
    for (let i = 0; i < bytes.length; i += 10_000) src.write(bytes.subarray(i, i + 10_000));
    src.end();
    const r = await cap.done;
    expect(r.emitted).toBe(300_000);
    expect(r.dropped).toBe(100_000);
    expect(isOutputRef(r.repr)).toBe(true);
    const ref = r.repr as OutputRef;
    expect(ref).toMatchObject({
      $out: { stream: "1.stdout", offset: 0, length: 300_000 },
      encoding: "base64",
      truncated: true,
    });
    const doc = JSON.parse(await text(reprJson(store, op, ref)));
    expect(Buffer.from(doc.value, "base64").equals(bytes.subarray(0, 300_000))).toBe(true);
    // inline events first (at most INLINE_OUTPUT_MAX bytes), then references in order
    let inline = 0;
    let next = -1;
    const rebuilt: Buffer[] = [];
    const reader = store.reader(op);
    for (const e of events) {
      if (isOutputRef(e)) {
        if (next < 0) next = inline;
        expect(e.$out.offset).toBe(next);
        expect(e.$out.length).toBeLessThanOrEqual(64 * 1024);
        next += e.$out.length;
        const c = await chunkRepr(reader, e);
        rebuilt.push(Buffer.from(c.value, c.encoding === "base64" ? "base64" : "latin1"));
      } else {
        expect(next).toBe(-1);
        const v = e as { value: string; encoding: string };
        const b = Buffer.from(v.value, v.encoding === "base64" ? "base64" : "latin1");
        inline += b.length;
        rebuilt.push(b);
      }
    }
    await reader.close();
    expect(inline).toBeLessThanOrEqual(INLINE_OUTPUT_MAX);
    expect(Buffer.concat(rebuilt).equals(bytes.subarray(0, 300_000))).toBe(true);
  });
});

describe("OutputCapture when the store refuses", () => {
  it("keeps the inline part as a truncated result instead of a reference to an empty file", async () => {
    const src = new PassThrough();
    const errors: unknown[] = [];
    const op = newId();
    const cap = new OutputCapture(
      src,
      1 << 20,
      {
        name: "1.stdout",
        create: async () => {
          const f = await store.create(op, "1.stdout");
          return {
            get size() {
              return f.size;
            },
            append: async () => {
              throw Object.assign(new Error("no space"), { code: "ENOSPC" });
            },
            seal: () => f.seal(),
          };
        },
      },
      async () => undefined,
      (err) => errors.push(err),
    );
    const first = Buffer.alloc(INLINE_OUTPUT_MAX, "a");
    src.write(first);
    await new Promise((r) => setImmediate(r));
    src.end(Buffer.alloc(1000, "b"));
    const r = await cap.done;
    expect(isOutputRef(r.repr)).toBe(false);
    expect(r.repr).toEqual({ value: first.toString(), encoding: "ascii", truncated: true });
    expect(r.dropped).toBe(1000);
    expect(errors).toHaveLength(1);
  });

  it("takes events from the head of a large backlog, bytes in order", async () => {
    const src = new PassThrough();
    const events: Array<Record<string, unknown>> = [];
    const op = newId();
    const cap = new OutputCapture(
      src,
      4 << 20,
      { name: "1.stdout", create: () => store.create(op, "1.stdout") },
      async (d) => {
        events.push(d);
      },
    );
    const bytes = randomBytes(3 << 20);
    for (let i = 0; i < bytes.length; i += 7_000) src.write(bytes.subarray(i, i + 7_000));
    src.end();
    const r = await cap.done;
    expect(isOutputRef(r.repr)).toBe(true);
    expect((await readRange(store, op, r.repr as OutputRef)).equals(bytes)).toBe(true);
    let at = 0;
    for (const e of events) {
      if (!isOutputRef(e)) continue;
      expect(e.$out.offset).toBeGreaterThanOrEqual(at);
      expect(e.$out.length).toBeLessThanOrEqual(64 * 1024);
      at = e.$out.offset + e.$out.length;
    }
    expect(at).toBe(bytes.length);
  });
});

describe("StdinLog", () => {
  it("overlapping large writes get disjoint ranges; small ones and late ones are echoed inline", async () => {
    const op = newId();
    const log = new StdinLog("2.stdin", () => store.create(op, "2.stdin"));
    const a = randomBytes(100_000);
    const b = randomBytes(150_000);
    const [ea, eb, small] = await Promise.all([log.record(a), log.record(b), log.record(Buffer.from("hi"))]);
    expect(small).toEqual([{ value: "hi", encoding: "ascii" }]);
    await log.close();
    const reader = store.reader(op);
    const back = async (events: Array<Record<string, unknown>>) => {
      const parts: Buffer[] = [];
      for (const e of events) {
        expect(isOutputRef(e)).toBe(true);
        if (!isOutputRef(e)) throw new Error("not a reference");
        const c = await chunkRepr(reader, e);
        parts.push(Buffer.from(c.value, c.encoding === "base64" ? "base64" : "latin1"));
      }
      return Buffer.concat(parts);
    };
    expect((await back(ea ?? [])).equals(a)).toBe(true);
    expect((await back(eb ?? [])).equals(b)).toBe(true);
    await reader.close();
    const late = await log.record(randomBytes(100_000));
    expect(late.length).toBe(1);
    expect(isOutputRef(late[0])).toBe(false);
  });
});
