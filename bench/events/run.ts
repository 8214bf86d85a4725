/**
 * Event-stream benchmark against the real daemon (started from sources by the test harness):
 *
 * 1. Live latency: a static ticker (compiled here with gcc, uploaded as a file) prints its own
 *    CLOCK_REALTIME in ns every 100 ms; a client following the run's events compares each line
 *    with the time it received it (same machine, same clock). Prints p50/p90/max.
 * 2. Memory: one run writes 1 GB to stdout with truncate_output_at = 1024 while ten clients
 *    follow it; samples the daemon's VmRSS. Prints idle, peak and growth.
 *
 *   npx tsx bench/events/run.ts
 *   BENCH_TICKS=100 BENCH_GB=1 BENCH_FOLLOWERS=10 npx tsx bench/events/run.ts
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeRepr, openEvents, type SseStream } from "../../packages/server/test/events/sse-client.js";
import { memoryOf, startDaemon } from "../../packages/server/test/harness/daemon.js";
import { FIXTURE_IMAGES, fixtures } from "../../packages/server/test/harness/fixtures.js";
import { startRegistry } from "../../packages/server/test/harness/registry.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TICKS = Number(process.env["BENCH_TICKS"] ?? 100);
const GB = Number(process.env["BENCH_GB"] ?? 1);
const FOLLOWERS = Number(process.env["BENCH_FOLLOWERS"] ?? 10);

const TICKER_C = `
#include <time.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  char buf[64];
  for (int i = 0; i < n; i++) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    int len = snprintf(buf, sizeof buf, "%lld%09ld\\n", (long long)ts.tv_sec, ts.tv_nsec);
    if (write(1, buf, len) != len) return 1;
    struct timespec d = {0, 100000000}; nanosleep(&d, 0);
  }
  return 0;
}
`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "bench-events-"));
  const src = join(work, "tick.c");
  const bin = join(work, "tick");
  await writeFile(src, TICKER_C.replace("#include <string.h>", "#include <string.h>\n#include <stdlib.h>"));
  await run("gcc", ["-O2", "-static", "-o", bin, src]);

  const fx = await fixtures();
  const registry = await startRegistry({ seedFrom: fx.registryData });
  console.log("starting daemon from sources...");
  const d = await startDaemon({ readyTimeoutMs: 120_000 });
  const api = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    headers.set("authorization", `Bearer ${d.token}`);
    if (json !== undefined) headers.set("content-type", "application/json");
    return fetch(`${d.url}${path}`, {
      ...rest,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  };
  const waitOp = async (id: string) => {
    for (;;) {
      const doc = (await (await api(`/v1/operations/${id}`)).json()) as {
        status: string;
        error: string | null;
      };
      if (["SUCCESS", "FAILED", "CANCELLED"].includes(doc.status)) return doc;
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const spawn = async (body: Record<string, unknown>) => {
    const r = await api("/v1/instances", { method: "POST", json: body });
    if (r.status !== 202) throw new Error(`spawn: ${r.status} ${await r.text()}`);
    return ((await r.json()) as { uuid: string }).uuid;
  };
  const streams: SseStream[] = [];
  try {
    const imp = await api("/v1/images/import", {
      method: "POST",
      json: {
        registry: { url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}` },
        tag: "busybox:latest",
      },
    });
    const impOp = await waitOp(((await imp.json()) as { uuid: string }).uuid);
    if (impOp.status !== "SUCCESS") throw new Error(`import: ${impOp.error}`);
    const up = await api("/v1/files", {
      method: "POST",
      body: await readFile(bin),
      headers: { "content-type": "application/octet-stream" },
    });
    const file = (await up.json()) as { uuid: string };

    // ---- 1. latency ---------------------------------------------------------------------------
    const tickId = await spawn({
      image: "tag:busybox:latest",
      command: "/usr/local/bin/tick",
      args: [String(TICKS)],
      disposable: true,
      timeout: 600,
      files: { "/usr/local/bin/tick": { uuid: file.uuid, mode: "0755" } },
    });
    const follower = await openEvents({ url: d.url, token: d.token }, tickId, { follow: true });
    streams.push(follower);
    await follower.done(600_000);
    const lat: number[] = [];
    for (const { item, at } of follower.items) {
      if (item.kind !== "event" || item.event.type !== "stdout") continue;
      for (const line of decodeRepr(item.event.data).toString().split("\n")) {
        if (/^\d{19}$/.test(line)) lat.push(at - Number(BigInt(line) / 1_000_000n));
      }
    }
    if (lat.length === 0) throw new Error("no ticks received");
    console.log("");
    console.log(
      `live latency, process write → following client (${lat.length} samples, ms): p50 ${pct(lat, 50)}  p90 ${pct(lat, 90)}  max ${Math.max(...lat)}   (aim: p50 < 10 ms)`,
    );

    // ---- 2. memory with a 1 GB writer and ten followers ---------------------------------------
    await new Promise((r) => setTimeout(r, 1000));
    const base = await memoryOf(d.pid);
    let peak = base.rss;
    const sampler = setInterval(() => {
      memoryOf(d.pid).then(
        (m) => (peak = Math.max(peak, m.rss)),
        () => {},
      );
    }, 20);
    const bytes = Math.round(GB * 1e9);
    const t0 = performance.now();
    const bigId = await spawn({
      image: "tag:busybox:latest",
      command: "head",
      args: ["-c", String(bytes), "/dev/zero"],
      truncate_output_at: 1024,
      disposable: true,
      timeout: 1200,
    });
    const followers = await Promise.all(
      Array.from({ length: FOLLOWERS }, () =>
        openEvents({ url: d.url, token: d.token }, bigId, { follow: true }),
      ),
    );
    streams.push(...followers);
    const results = await Promise.all(followers.map((f) => f.done(1_800_000)));
    const ms = performance.now() - t0;
    clearInterval(sampler);
    const end = await memoryOf(d.pid);
    peak = Math.max(peak, end.rss);
    const doc = (await (await api(`/v1/operations/${bigId}`)).json()) as {
      status: string;
      metadata: { result: { stdout: { value: string; truncated: boolean } } };
    };
    const same = results.every((r) => JSON.stringify(r) === JSON.stringify(results[0]));
    const trunc = results[0]?.find((e) => e.type === "truncated");
    console.log(
      `1 run writing ${(bytes / 1e9).toFixed(2)} GB to stdout (truncate_output_at 1024), ${FOLLOWERS} followers: ${(ms / 1000).toFixed(1)} s, ${doc.status}, ` +
        `${results[0]?.length} events each, identical: ${same}, truncated event: ${JSON.stringify(trunc?.data)}`,
    );
    console.log(
      `daemon RSS: ${(base.rss / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB, growth ${((peak - base.rss) / MiB).toFixed(1)} MiB (aim < 50 MiB); VmHWM ${(end.hwm / MiB).toFixed(1)} MiB`,
    );
  } finally {
    for (const s of streams) s.close();
    await d.stop();
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
