/**
 * Conformance suite every ContentStore backend must pass (in the spirit of containerd's
 * content/testsuite): call `contentStoreConformance(name, factory)` from a backend's test file.
 * The factory gives the suite a fresh, empty store plus two backend-specific probes, because
 * "nothing was left behind" can only be checked by looking at the backend's own storage.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Digest, sha256Of } from "../core/digest.js";
import { isAppError } from "../core/errors.js";
import type { BlobInfo, ContentStore } from "./content-store.js";

export interface ContentStoreFixture {
  store: ContentStore;
  /** Names of unfinished-ingest artefacts (temp files, multipart uploads...) currently present. */
  pendingIngests(): Promise<string[]>;
  /** Leaves an unfinished ingest behind, as a crash in the middle of an upload would. */
  simulateCrashedIngest(): Promise<void>;
  /** A second store instance over the same storage, as after a restart. */
  reopen(): Promise<ContentStore>;
  /** Removes everything the fixture created. */
  cleanup(): Promise<void>;
}

/** Emits `data` in chunks of `chunk` bytes, yielding to the event loop between chunks. */
export function chunkedSource(data: Buffer, chunk = 64 * 1024, delayMs = 0): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < data.length; i += chunk) {
        if (delayMs > 0) await sleep(delayMs);
        else await Promise.resolve();
        yield data.subarray(i, Math.min(i + chunk, data.length));
      }
    })(),
    { objectMode: false },
  );
}

/** A source that never ends on its own: one chunk every `delayMs` until destroyed. */
function endlessSource(chunk = 16 * 1024, delayMs = 2): Readable {
  return Readable.from(
    (async function* () {
      const block = randomBytes(chunk);
      for (;;) {
        await sleep(delayMs);
        yield block;
      }
    })(),
    { objectMode: false },
  );
}

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

async function listAll(store: ContentStore): Promise<BlobInfo[]> {
  const out: BlobInfo[] = [];
  for await (const b of store.list()) out.push({ digest: b.digest, size: b.size });
  return out.sort((a, b) => a.digest.localeCompare(b.digest));
}

async function listWithTimes(store: ContentStore): Promise<Map<Digest, number>> {
  const out = new Map<Digest, number>();
  for await (const b of store.list()) out.set(b.digest, b.modifiedAt);
  return out;
}

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return isAppError(err) ? err.kind : `non-AppError: ${String(err)}`;
  }
  return "resolved";
}

export function contentStoreConformance(name: string, make: () => Promise<ContentStoreFixture>): void {
  describe(`ContentStore conformance: ${name}`, () => {
    let fx: ContentStoreFixture;
    let store: ContentStore;

    beforeEach(async () => {
      fx = await make();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    async function expectNothingLeft(): Promise<void> {
      expect(await listAll(store)).toEqual([]);
      expect(await fx.pendingIngests()).toEqual([]);
    }

    describe("ingest and read", () => {
      it("stores bytes under their sha256 and reads them back", async () => {
        const data = randomBytes(300 * 1024 + 7);
        const info = await store.ingest(chunkedSource(data));
        expect(info).toEqual({ digest: sha256Of(data), size: data.length });
        expect(await store.info(info.digest)).toEqual(info);
        expect((await readAll(await store.read(info.digest))).equals(data)).toBe(true);
        expect(await fx.pendingIngests()).toEqual([]);
      });

      it("accepts an empty source", async () => {
        const info = await store.ingest(Readable.from([]));
        expect(info).toEqual({ digest: sha256Of(""), size: 0 });
        expect((await readAll(await store.read(info.digest))).length).toBe(0);
      });

      it("commits when the expected digest and size match", async () => {
        const data = randomBytes(4096);
        const info = await store.ingest(chunkedSource(data, 1000), {
          expected: { digest: sha256Of(data), size: data.length },
        });
        expect(info.digest).toBe(sha256Of(data));
      });

      it("is idempotent: ingesting existing bytes again returns the same blob", async () => {
        const data = randomBytes(10_000);
        const a = await store.ingest(chunkedSource(data));
        const b = await store.ingest(chunkedSource(data, 333));
        expect(b).toEqual(a);
        expect(await listAll(store)).toEqual([a]);
        expect(await fx.pendingIngests()).toEqual([]);
      });

      it("blobs survive a reopen of the same storage", async () => {
        const data = randomBytes(1234);
        const info = await store.ingest(chunkedSource(data));
        const again = await fx.reopen();
        expect(await again.info(info.digest)).toEqual(info);
        expect((await readAll(await again.read(info.digest))).equals(data)).toBe(true);
      });
    });

    describe("verification", () => {
      it("digest mismatch is data_loss and nothing becomes visible", async () => {
        const data = randomBytes(50_000);
        const wrong = sha256Of("something else");
        const kind = await kindOf(store.ingest(chunkedSource(data), { expected: { digest: wrong } }));
        expect(kind).toBe("data_loss");
        expect(await store.info(wrong)).toBeUndefined();
        expect(await store.info(sha256Of(data))).toBeUndefined();
        await expectNothingLeft();
      });

      it("size mismatch is data_loss and nothing becomes visible", async () => {
        const data = randomBytes(50_000);
        for (const size of [data.length - 1, data.length + 1, 0]) {
          const kind = await kindOf(
            store.ingest(chunkedSource(data), { expected: { digest: sha256Of(data), size } }),
          );
          expect(kind, `expected size ${size}`).toBe("data_loss");
        }
        expect(await store.info(sha256Of(data))).toBeUndefined();
        await expectNothingLeft();
      });

      it("more than maxBytes is payload_too_large and leaves no temp file", async () => {
        const data = randomBytes(256 * 1024);
        const kind = await kindOf(store.ingest(chunkedSource(data, 8192), { maxBytes: 100_000 }));
        expect(kind).toBe("payload_too_large");
        expect(await store.info(sha256Of(data))).toBeUndefined();
        await expectNothingLeft();
      });

      it("maxBytes is inclusive: exactly maxBytes is accepted, one more is not", async () => {
        const data = randomBytes(10_000);
        expect((await store.ingest(chunkedSource(data, 999), { maxBytes: 10_000 })).size).toBe(10_000);
        const more = Buffer.concat([data, Buffer.from([1])]);
        expect(await kindOf(store.ingest(chunkedSource(more, 999), { maxBytes: 10_000 }))).toBe(
          "payload_too_large",
        );
        expect(await store.info(sha256Of(more))).toBeUndefined();
        expect(await fx.pendingIngests()).toEqual([]);
      });

      it("maxBytes 0 accepts only the empty blob", async () => {
        expect((await store.ingest(Readable.from([]), { maxBytes: 0 })).size).toBe(0);
        expect(await kindOf(store.ingest(Readable.from([Buffer.from("x")]), { maxBytes: 0 }))).toBe(
          "payload_too_large",
        );
        expect(await fx.pendingIngests()).toEqual([]);
      });

      it("a source that fails mid-stream rejects the ingest and leaves nothing", async () => {
        const source = Readable.from(
          (async function* () {
            yield randomBytes(10_000);
            await sleep(5);
            throw new Error("connection reset by peer");
          })(),
        );
        const kind = await kindOf(store.ingest(source));
        expect(kind).not.toBe("resolved");
        await expectNothingLeft();
      });
    });

    describe("concurrency", () => {
      it("concurrent ingests of the same bytes all succeed with one blob", async () => {
        const data = randomBytes(512 * 1024);
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => store.ingest(chunkedSource(data, 4096 * (i + 1), i % 2))),
        );
        for (const r of results) expect(r).toEqual({ digest: sha256Of(data), size: data.length });
        expect(await listAll(store)).toEqual([{ digest: sha256Of(data), size: data.length }]);
        expect((await readAll(await store.read(sha256Of(data)))).equals(data)).toBe(true);
        expect(await fx.pendingIngests()).toEqual([]);
      });

      it("concurrent ingests of different bytes do not interfere", async () => {
        const blobs = Array.from({ length: 6 }, (_, i) => randomBytes(20_000 + i));
        const results = await Promise.all(blobs.map((b) => store.ingest(chunkedSource(b, 1500, 1))));
        const expected = blobs.map((b) => ({ digest: sha256Of(b), size: b.length }));
        expect(results).toEqual(expected);
        for (const b of blobs) expect((await readAll(await store.read(sha256Of(b)))).equals(b)).toBe(true);
      });
    });

    describe("read with range", () => {
      const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
      let d: Digest;
      beforeEach(async () => {
        d = (await store.ingest(chunkedSource(data, 100))).digest;
      });

      it("start and end (exclusive)", async () => {
        expect(
          (await readAll(await store.read(d, { start: 10, end: 20 }))).equals(data.subarray(10, 20)),
        ).toBe(true);
      });
      it("start only reads to the end", async () => {
        expect((await readAll(await store.read(d, { start: 990 }))).equals(data.subarray(990))).toBe(true);
      });
      it("end only reads from the start", async () => {
        expect((await readAll(await store.read(d, { end: 3 }))).equals(data.subarray(0, 3))).toBe(true);
      });
      it("end past the size stops at the size", async () => {
        expect(
          (await readAll(await store.read(d, { start: 995, end: 5000 }))).equals(data.subarray(995)),
        ).toBe(true);
      });
      it("an empty range yields no bytes", async () => {
        expect((await readAll(await store.read(d, { start: 10, end: 10 }))).length).toBe(0);
      });
      it("a missing blob is not_found", async () => {
        expect(await kindOf(store.read(sha256Of("absent")))).toBe("not_found");
        expect(await store.info(sha256Of("absent"))).toBeUndefined();
      });
    });

    describe("list and delete", () => {
      it("lists every committed blob with its size", async () => {
        const blobs = [randomBytes(1), randomBytes(100), randomBytes(10_000), Buffer.alloc(0)];
        for (const b of blobs) await store.ingest(chunkedSource(b));
        const expected = blobs
          .map((b) => ({ digest: sha256Of(b), size: b.length }))
          .sort((a, b) => a.digest.localeCompare(b.digest));
        expect(await listAll(store)).toEqual(expected);
      });

      it("delete removes a blob; deleting a missing blob is not an error", async () => {
        const keep = await store.ingest(chunkedSource(randomBytes(100)));
        const gone = await store.ingest(chunkedSource(randomBytes(200)));
        await store.delete(gone.digest);
        expect(await store.info(gone.digest)).toBeUndefined();
        expect(await kindOf(store.read(gone.digest))).toBe("not_found");
        expect(await listAll(store)).toEqual([keep]);
        await store.delete(gone.digest);
        await store.delete(sha256Of("never stored"));
        expect(await store.info(keep.digest)).toEqual(keep);
      });

      it("a deleted blob can be ingested again", async () => {
        const data = randomBytes(777);
        const a = await store.ingest(chunkedSource(data));
        await store.delete(a.digest);
        expect(await store.ingest(chunkedSource(data))).toEqual(a);
        expect((await readAll(await store.read(a.digest))).equals(data)).toBe(true);
      });

      it("a reader opened before delete still reads the whole blob", async () => {
        const data = randomBytes(200_000);
        const info = await store.ingest(chunkedSource(data));
        const reader = await store.read(info.digest);
        await store.delete(info.digest);
        expect((await readAll(reader)).equals(data)).toBe(true);
      });

      it("list says when each blob was written; ingesting the same bytes again renews it", async () => {
        // GC leaves young blobs alone (an upload may not have its row yet): a re-upload of old
        // bytes must look young too.
        const data = randomBytes(321);
        const before = Date.now();
        const info = await store.ingest(chunkedSource(data));
        const first = (await listWithTimes(store)).get(info.digest);
        expect(first).toBeGreaterThanOrEqual(before - 1000);
        expect(first).toBeLessThanOrEqual(Date.now() + 1000);
        await sleep(30);
        const mid = Date.now();
        await store.ingest(chunkedSource(data));
        const second = (await listWithTimes(store)).get(info.digest) as number;
        expect(second).toBeGreaterThan(first as number);
        expect(second).toBeGreaterThanOrEqual(mid - 20); // file times follow a coarse clock
      });
    });

    describe("reclaim", () => {
      it("removes stale ingests and keeps committed blobs", async () => {
        const keep = await store.ingest(chunkedSource(randomBytes(5000)));
        await fx.simulateCrashedIngest();
        await fx.simulateCrashedIngest();
        expect((await fx.pendingIngests()).length).toBe(2);
        const reopened = await fx.reopen();
        expect(await reopened.reclaim()).toBe(2);
        expect(await fx.pendingIngests()).toEqual([]);
        expect(await reopened.info(keep.digest)).toEqual(keep);
        expect(await listAll(reopened)).toEqual([keep]);
      });

      it("returns 0 when there is nothing to reclaim", async () => {
        expect(await store.reclaim()).toBe(0);
      });
    });

    describe("abort", () => {
      it("aborting during an ingest rejects it as cancelled and leaves nothing", async () => {
        const ac = new AbortController();
        const p = store.ingest(endlessSource(), { signal: ac.signal });
        await sleep(30);
        expect((await fx.pendingIngests()).length).toBeLessThanOrEqual(1);
        ac.abort();
        expect(await kindOf(p)).toBe("cancelled");
        await expectNothingLeft();
      });

      it("an already aborted signal rejects without storing anything", async () => {
        const ac = new AbortController();
        ac.abort();
        const data = randomBytes(1000);
        expect(await kindOf(store.ingest(chunkedSource(data), { signal: ac.signal }))).toBe("cancelled");
        expect(await store.info(sha256Of(data))).toBeUndefined();
        await expectNothingLeft();
      });

      it("aborting with maxBytes and expected set still leaves nothing", async () => {
        const ac = new AbortController();
        const p = store.ingest(endlessSource(4096, 1), {
          signal: ac.signal,
          maxBytes: 1 << 30,
          expected: { digest: sha256Of("x") },
        });
        setTimeout(() => ac.abort(), 20);
        expect(await kindOf(p)).toBe("cancelled");
        await expectNothingLeft();
      });
    });
  });
}
