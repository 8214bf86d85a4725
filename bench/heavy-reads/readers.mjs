// Heavy readers for bench/heavy-reads, in a worker thread so that reading tens of MB per
// response never delays the main thread's whoami probes (the latency measured is the server's).
import { parentPort, workerData } from "node:worker_threads";

const { url, token, paths, clients, seconds } = workerData;
const until = Date.now() + seconds * 1000;
const stats = { ok: 0, refused: 0, errors: 0, bytes: 0, msOk: [] };

async function client(i) {
  const path = paths[i % paths.length];
  while (Date.now() < until) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${url}${path}`, {
        headers: { authorization: `Bearer ${token}`, "accept-encoding": "identity" },
        signal: AbortSignal.timeout(Math.max(1, until - Date.now()) + 60_000),
      });
      if (res.status === 429) {
        await res.arrayBuffer();
        stats.refused++;
        // An honest client waits as told.
        const wait = Number(res.headers.get("retry-after") ?? "1") * 1000;
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      for await (const chunk of res.body) stats.bytes += chunk.length;
      if (res.status === 200) {
        stats.ok++;
        stats.msOk.push(performance.now() - t0);
      } else stats.errors++;
    } catch {
      stats.errors++;
    }
  }
}

await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
parentPort.postMessage(stats);
