/**
 * Upload throughput of `POST /v1/files` against `sha256sum` of the same bytes, plus the server's
 * memory while it streams them. Starts the real daemon from sources (test harness), uploads a
 * random file chunked (no Content-Length, like the CLI), median of N runs each.
 *
 *   npx tsx bench/files-upload/run.ts            # 200 MB, 3 runs
 *   BENCH_SIZE_MB=500 BENCH_RUNS=5 npx tsx bench/files-upload/run.ts
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { memoryOf, startDaemon } from "../../packages/server/test/harness/daemon.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE_MB = Number(process.env["BENCH_SIZE_MB"] ?? 200);
const RUNS = Number(process.env["BENCH_RUNS"] ?? 3);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

async function makeFile(path: string, bytes: number): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  for (let done = 0; done < bytes; ) {
    const n = Math.min(4 * MiB, bytes - done);
    const chunk = randomBytes(n);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
    done += n;
  }
  await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
  return hash.digest("hex");
}

function upload(url: string, token: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${url}/v1/files`);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/octet-stream",
          "transfer-encoding": "chunked",
        },
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    pipeline(createReadStream(path, { highWaterMark: MiB }), req).catch(reject);
  });
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "bench-files-upload-"));
  const file = join(work, "payload.bin");
  const bytes = SIZE_MB * 1000 * 1000;
  console.log(`creating ${SIZE_MB} MB random file...`);
  const expected = await makeFile(file, bytes);

  console.log("starting daemon from sources...");
  const d = await startDaemon({
    env: { CONTREE_MAX_UPLOAD_BYTES: String(bytes * 2) },
    readyTimeoutMs: 120_000,
  });
  try {
    const atStart = await memoryOf(d.pid);
    // Warm-up: load the upload path once so lazily loaded code is not counted.
    const warm = await upload(d.url, d.token, file);
    if (warm.status !== 201) throw new Error(`warm-up upload failed: ${warm.status} ${warm.body}`);

    const hashTimes: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const { stdout } = await run("sha256sum", [file]);
      hashTimes.push(performance.now() - t);
      if (!stdout.startsWith(expected)) throw new Error("sha256sum disagrees with the generator");
    }

    const base = await memoryOf(d.pid);
    let peakRss = base.rss;
    const sampler = setInterval(() => {
      memoryOf(d.pid).then(
        (m) => {
          peakRss = Math.max(peakRss, m.rss);
        },
        () => {},
      );
    }, 10);
    const uploadTimes: number[] = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        const t = performance.now();
        const res = await upload(d.url, d.token, file);
        uploadTimes.push(performance.now() - t);
        if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${res.body}`);
        const f = JSON.parse(res.body) as { sha256: string; size: number };
        if (f.sha256 !== expected || f.size !== bytes)
          throw new Error(`server stored something else: ${res.body}`);
      }
    } finally {
      clearInterval(sampler);
    }
    const end = await memoryOf(d.pid);
    peakRss = Math.max(peakRss, end.rss);

    const h = median(hashTimes);
    const u = median(uploadTimes);
    console.log("");
    console.log(`file:            ${SIZE_MB} MB (${bytes} bytes), ${RUNS} runs each, median`);
    console.log(`sha256sum:       ${fmt(h)}  (${rate(bytes, h)})   runs: ${hashTimes.map(fmt).join(", ")}`);
    console.log(`POST /v1/files:  ${fmt(u)}  (${rate(bytes, u)})   runs: ${uploadTimes.map(fmt).join(", ")}`);
    console.log(`ratio upload/sha256sum: ${(u / h).toFixed(2)}x   (aim: <= 2x)`);
    console.log(
      `server RSS: ${(atStart.rss / MiB).toFixed(1)} MiB idle after start, ${(base.rss / MiB).toFixed(1)} MiB after warm-up upload, peak ${(peakRss / MiB).toFixed(1)} MiB during uploads ` +
        `(growth ${((peakRss - base.rss) / MiB).toFixed(1)} MiB; aim < 50 MiB); VmHWM ${(end.hwm / MiB).toFixed(1)} MiB`,
    );
  } finally {
    await d.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
