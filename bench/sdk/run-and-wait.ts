/**
 * What the SDK adds to a run: the median latency of `image.runAndWait("true")` per driver, against
 * raw HTTP clients doing the same run in the same process.
 *
 *   bash scripts/in-private-mount-ns.sh npx tsx bench/sdk/run-and-wait.ts
 *   … run-and-wait.ts --drivers crun,runsc --n 40
 *
 * Per driver, one in-process server (real HTTP on 127.0.0.1, its own data dir, busybox imported
 * from a loopback registry; crun for config runtime "oci", runsc for "gvisor", as bench/run-latency
 * chooses them). Each round times three clients, in an order rotated every round so that load drift
 * hits all three alike:
 *  - sdk: `await busybox.runAndWait("true")` (ContreeClient from `@contree/sdk`, the workspace's
 *    source): POST /v1/instances, follow the event stream to `completion`, GET the operation, decode;
 *  - raw events: the same three requests with bare `fetch`, no decoding;
 *  - raw poll: POST, then GET /v1/operations/{id} every 10 ms until the status is terminal.
 * Every timed run must end SUCCESS with exit 0. Prints medians, p95s and sdk / raw ratios.
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { ContreeClient, type ImageHandle } from "@contree/sdk";
import { FIXTURE_IMAGES, fixtures } from "../../packages/server/test/harness/fixtures.js";
import {
  startTestServer,
  type TestServer,
  waitOperation,
} from "../../packages/server/test/harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../../packages/server/test/harness/registry.js";

const WARMUP = 3;
const { values: opt } = parseArgs({
  options: {
    drivers: { type: "string", default: "crun,runsc" },
    n: { type: "string", default: "30" },
  },
});
const DRIVERS = (opt.drivers ?? "").split(",").filter((d) => d !== "") as Driver[];
const N = Number(opt.n);

type Driver = "crun" | "runsc";
type Variant = "sdk" | "raw events" | "raw poll";
const VARIANTS: Variant[] = ["sdk", "raw events", "raw poll"];

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};
const f1 = (x: number) => x.toFixed(1);
/** The 1-minute load average: the machine is shared, so every row says how busy it was. */
const load = () => (loadavg()[0] ?? 0).toFixed(1);

/** One client of the three: runs `true` from busybox and checks it ended SUCCESS with exit 0. */
type Runner = () => Promise<void>;

function sdkRunner(busybox: ImageHandle): Runner {
  return async () => {
    const r = await busybox.runAndWait("true");
    if (r.status !== "SUCCESS" || r.exitCode !== 0)
      throw new Error(`sdk run: ${r.status}, exit ${r.exitCode}`);
  };
}

interface RawClient {
  post(): Promise<string>;
  get(id: string): Promise<Record<string, unknown>>;
  headers: Record<string, string>;
  base: string;
}

function rawClient(t: TestServer, image: string): RawClient {
  const base = `${t.url}${t.config.pathPrefix}/v1`;
  const headers = { authorization: `Bearer ${t.token}` };
  const body = JSON.stringify({ image, command: "true", shell: true });
  return {
    base,
    headers,
    async post() {
      const r = await fetch(`${base}/instances`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body,
      });
      if (r.status !== 202) throw new Error(`spawn answered ${r.status}: ${await r.text()}`);
      return ((await r.json()) as { uuid: string }).uuid;
    },
    async get(id) {
      const r = await fetch(`${base}/operations/${id}`, { headers });
      if (r.status !== 200) throw new Error(`GET operation answered ${r.status}`);
      return (await r.json()) as Record<string, unknown>;
    },
  };
}

const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCELLED"]);

function checkDoc(doc: Record<string, unknown>, what: string): void {
  const meta = doc["metadata"] as { result?: { state?: { exit_code?: number } } } | null;
  const exit = meta?.result?.state?.exit_code;
  if (doc["status"] !== "SUCCESS" || exit !== 0)
    throw new Error(`${what}: ${String(doc["status"])}, exit ${exit}`);
}

/** POST, the followed event stream read until `completion`, then the operation document. */
function rawEventsRunner(c: RawClient): Runner {
  return async () => {
    const id = await c.post();
    const ev = await fetch(`${c.base}/operations/${id}/events?follow=1`, { headers: c.headers });
    const reader = ev.body?.getReader();
    if (!reader) throw new Error("no event stream");
    const dec = new TextDecoder();
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (value) text += dec.decode(value, { stream: true });
      const i = text.indexOf("event: completion");
      if (i >= 0 && text.indexOf("\n\n", i) >= 0) break;
      if (done) throw new Error("event stream ended without completion");
    }
    await reader.cancel();
    // As the SDK does: the stored document can trail the completion event by a moment.
    for (let doc = await c.get(id); ; doc = await c.get(id)) {
      if (TERMINAL.has(String(doc["status"]))) return checkDoc(doc, "raw events run");
      await new Promise((r) => setTimeout(r, 10));
    }
  };
}

function rawPollRunner(c: RawClient): Runner {
  return async () => {
    const id = await c.post();
    for (;;) {
      const doc = await c.get(id);
      if (TERMINAL.has(String(doc["status"]))) return checkDoc(doc, "raw poll run");
      await new Promise((r) => setTimeout(r, 10));
    }
  };
}

async function importBusybox(t: TestServer, reg: RegistryHandle): Promise<string> {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
  });
  const { uuid } = (await r.json()) as { uuid: string };
  const op = await waitOperation(t, uuid, 180_000);
  if (op["status"] !== "SUCCESS") throw new Error(`import failed: ${String(op["error"])}`);
  return String(op["result_image_uuid"]);
}

interface Row {
  driver: Driver;
  times: Record<Variant, number[]>;
  loadStart: string;
  loadEnd: string;
}

async function measure(driver: Driver, reg: RegistryHandle): Promise<Row> {
  const t = await startTestServer(
    { runtime: driver === "runsc" ? "gvisor" : "oci" },
    { CONTREE_INSTANCE_MAX_CONCURRENCY: "1000" },
  );
  try {
    const image = await importBusybox(t, reg);
    const client = new ContreeClient({ url: `${t.url}${t.config.pathPrefix}`, token: t.token, env: {} });
    const busybox = await client.images.get("busybox:latest");
    if (busybox.uuid !== image) throw new Error(`busybox:latest is ${busybox.uuid}, imported ${image}`);
    const raw = rawClient(t, image);
    const runners: Record<Variant, Runner> = {
      sdk: sdkRunner(busybox),
      "raw events": rawEventsRunner(raw),
      "raw poll": rawPollRunner(raw),
    };
    for (let i = 0; i < WARMUP; i++) for (const v of VARIANTS) await runners[v]();
    const times: Record<Variant, number[]> = { sdk: [], "raw events": [], "raw poll": [] };
    const loadStart = load();
    for (let round = 0; round < N; round++) {
      for (let k = 0; k < VARIANTS.length; k++) {
        const v = VARIANTS[(round + k) % VARIANTS.length] as Variant;
        const t0 = performance.now();
        await runners[v]();
        times[v].push(performance.now() - t0);
      }
    }
    return { driver, times, loadStart, loadEnd: load() };
  } finally {
    await t.close();
  }
}

async function main(): Promise<void> {
  const fx = await fixtures();
  const reg = await startRegistry({ seedFrom: fx.registryData });
  const rows: Row[] = [];
  try {
    for (const driver of DRIVERS) {
      console.error(`${driver}: ${N} rounds of ${VARIANTS.join(", ")} (load ${load()})`);
      rows.push(await measure(driver, reg));
    }
  } finally {
    await reg.stop();
  }
  console.log(`\nrunAndWait("true"), N=${N} per client after ${WARMUP} warm-ups, ms:`);
  console.log(
    "| driver | load | sdk p50 | sdk p95 | raw events p50 | raw poll p50 | sdk / raw events | sdk / raw poll |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const { driver, times, loadStart, loadEnd } of rows) {
    const p50 = (v: Variant) => quantile(times[v], 0.5);
    console.log(
      `| ${driver} | ${loadStart} → ${loadEnd} | ${f1(p50("sdk"))} | ${f1(quantile(times.sdk, 0.95))} | ` +
        `${f1(p50("raw events"))} | ${f1(p50("raw poll"))} | ` +
        `${(p50("sdk") / p50("raw events")).toFixed(2)}× | ${(p50("sdk") / p50("raw poll")).toFixed(2)}× |`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
