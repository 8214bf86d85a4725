/**
 * Latency of the inspect hot paths over HTTP: `list?path=/bin` (≈270 entries, mostly symlinks)
 * and `download?path=/etc/passwd` on an imported busybox, against `GET /v1/whoami` on the same
 * server as the baseline (auth + routing + JSON, no filesystem). Sequential keep-alive requests
 * from this process to an in-process server on 127.0.0.1, after a warm-up; repeated listings
 * are served from the per-image listing cache, so the first (cold) listing is printed apart.
 *
 *   npx tsx bench/inspect/run.ts              # 500 requests per endpoint
 *   BENCH_N=2000 npx tsx bench/inspect/run.ts
 */
import { FIXTURE_IMAGES, fixtures } from "../../packages/server/test/harness/fixtures.js";
import { startTestServer, waitOperation } from "../../packages/server/test/harness/in-process.js";
import { startRegistry } from "../../packages/server/test/harness/registry.js";

const N = Number(process.env["BENCH_N"] ?? 500);
const WARMUP = 50;

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

const fx = await fixtures();
const reg = await startRegistry({ seedFrom: fx.registryData });
const t = await startTestServer();
try {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` } },
  });
  const { uuid } = (await r.json()) as { uuid: string };
  const op = await waitOperation(t, uuid, 120_000);
  if (op["status"] !== "SUCCESS") throw new Error(`import failed: ${String(op["error"])}`);
  const img = (op["result"] as { image: string }).image;

  // First (cold) listing of each directory: view, passwd/group and the directory read from disk.
  const cold: string[] = [];
  for (const dir of ["/bin", "/etc", "/"]) {
    const t0 = performance.now();
    const res = await t.api(`/v1/inspect/${img}/list?path=${dir}`);
    await res.arrayBuffer();
    cold.push(`${dir} ${(performance.now() - t0).toFixed(2)} ms`);
  }

  const cases: Array<[string, string]> = [
    ["whoami (baseline)", "/v1/whoami"],
    ["list?path=/bin", `/v1/inspect/${img}/list?path=/bin`],
    ["download?path=/etc/passwd", `/v1/inspect/${img}/download?path=/etc/passwd`],
  ];
  const results: Array<{ name: string; p50: number; p95: number; bytes: number }> = [];
  for (const [name, path] of cases) {
    let bytes = 0;
    const once = async () => {
      const res = await t.api(path);
      const body = await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
      bytes = body.byteLength;
    };
    for (let i = 0; i < WARMUP; i++) await once();
    const times: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      await once();
      times.push(performance.now() - t0);
    }
    results.push({ name, p50: quantile(times, 0.5), p95: quantile(times, 0.95), bytes });
  }
  const base = results[0]!.p50;
  console.log(`cold list (first request per directory, one sample each): ${cold.join(", ")}`);
  console.log(
    `inspect latency, ${N} sequential requests each over HTTP (keep-alive), after ${WARMUP} warm-up`,
  );
  console.log(
    `${"endpoint".padEnd(28)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)} ${"p50/base".padStart(9)} ${"body B".padStart(8)}`,
  );
  for (const r of results) {
    console.log(
      `${r.name.padEnd(28)} ${r.p50.toFixed(3).padStart(8)} ${r.p95.toFixed(3).padStart(8)} ${(r.p50 / base).toFixed(2).padStart(9)} ${String(r.bytes).padStart(8)}`,
    );
  }
} finally {
  await t.close();
  await reg.stop();
}
