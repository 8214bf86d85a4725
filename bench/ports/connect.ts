/**
 * Exposed ports: the cost of one proxied request per driver against a direct loopback request in
 * this same process.
 *
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/ports/connect.ts
 *   BENCH_N=50 BENCH_DRIVERS=crun,runc,runsc bash scripts/in-private-mount-ns.sh npx tsx bench/ports/connect.ts
 *
 * For each driver: a real in-process server, busybox imported from the fixture registry, one
 * instance running busybox httpd on 127.0.0.1:8080 (networking disabled). Samples, sequential:
 *  - direct: GET of a small file from a busybox httpd on the host's loopback, a new TCP
 *    connection each time (what a client on the same machine pays without any proxy);
 *  - proxied: the same GET through /v1/operations/{id}/ports/8080/… over a kept-alive
 *    connection to the server, so what it adds is the relay exec'd in the sandbox per request.
 * Prints medians, p90 and the ratio proxied/direct.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importBusybox } from "../../packages/server/test/harness/busybox-image.js";
import { startTestServer } from "../../packages/server/test/harness/in-process.js";
import { withoutCrun } from "../../packages/server/test/harness/tenant.js";

const N = Number(process.env["BENCH_N"] ?? 40);
const DRIVERS = (process.env["BENCH_DRIVERS"] ?? "crun,runc,runsc").split(",");
const RUNTIME: Record<string, string> = { crun: "oci", runc: "oci", runsc: "gvisor" };

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

/** ms for one GET (new connection unless an agent is given), the body checked. */
function get(
  url: string,
  headers: Record<string, string> = {},
  agent?: import("node:http").Agent,
): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, ...(agent ? { agent } : { agent: false }) }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += String(c);
      });
      res.on("end", () => {
        if (res.statusCode !== 200 || !body.startsWith("hello"))
          reject(new Error(`${res.statusCode} ${body}`));
        else resolve(performance.now() - t0);
      });
    });
    req.on("error", reject);
    req.end();
  });
}

async function direct(): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), "bench-ports-"));
  writeFileSync(join(dir, "hello.txt"), "hello\n");
  const port = 18000 + Math.floor(Math.random() * 1000);
  const httpd: ChildProcess = spawn("busybox", ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", dir], {
    stdio: "ignore",
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 5; i++) await get(`http://127.0.0.1:${port}/hello.txt`);
    const xs: number[] = [];
    for (let i = 0; i < N; i++) xs.push(await get(`http://127.0.0.1:${port}/hello.txt`));
    return xs;
  } finally {
    httpd.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function proxied(driver: string): Promise<number[]> {
  const start = () => startTestServer({ runtime: RUNTIME[driver] as "oci" });
  const t = driver === "runc" ? await withoutCrun(start) : await start();
  const { registry } = await importBusybox(t);
  let op = "";
  try {
    if (t.server.runtime.name !== driver) throw new Error(`wanted ${driver}, got ${t.server.runtime.name}`);
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        disposable: true,
        timeout: 600,
        shell: true,
        command: "mkdir -p /tmp/w && echo hello > /tmp/w/hello.txt && httpd -f -p 127.0.0.1:8080 -h /tmp/w",
      },
    });
    op = ((await r.json()) as { uuid: string }).uuid;
    const url = `${t.url}${t.config.pathPrefix}/v1/operations/${op}/ports/8080/hello.txt`;
    const auth = { authorization: `Bearer ${t.token}` };
    const agent = new (await import("node:http")).Agent({ keepAlive: true, maxSockets: 1 });
    for (let ok = 0, i = 0; ok < 5; i++) {
      if (i > 600) throw new Error("httpd never answered");
      ok = await get(url, auth, agent).then(
        () => ok + 1,
        () => new Promise<number>((res) => setTimeout(() => res(0), 100)),
      );
    }
    const xs: number[] = [];
    for (let i = 0; i < N; i++) xs.push(await get(url, auth, agent));
    agent.destroy();
    return xs;
  } finally {
    if (op) await t.api(`/v1/operations/${op}`, { method: "DELETE" }).catch(() => undefined);
    await t.close();
    await registry.stop();
  }
}

const base = await direct();
const b50 = pct(base, 50);
console.log(
  `direct loopback GET (new connection): median ${b50.toFixed(2)} ms, p90 ${pct(base, 90).toFixed(2)} ms (n=${N})`,
);
for (const d of DRIVERS) {
  const xs = await proxied(d);
  const m = pct(xs, 50);
  console.log(
    `${d.padEnd(5)} proxied GET: median ${m.toFixed(2)} ms, p90 ${pct(xs, 90).toFixed(2)} ms, ` +
      `${(m / b50).toFixed(0)}× direct, +${(m - b50).toFixed(1)} ms (n=${N})`,
  );
}
process.exit(0);
