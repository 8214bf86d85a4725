/**
 * Issue 11 §4: `/metrics` tells an operator what the server does, not only its HTTP routes.
 * Against a real server (real registry, real sandboxes): imports that succeed and fail, a run
 * that commits, a run cancelled while running and one cancelled while queued move exactly the
 * counters, histograms and gauges they should, and the whole page is valid exposition text.
 */
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openMetadata } from "../../src/main.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";
import { type Family, parseExposition, sampleValue } from "./exposition.js";

const METRICS_TOKEN = "scrape-token-0123456789";

interface Event {
  type: string;
  data: Record<string, unknown>;
}

let reg: RegistryHandle;
let t: TestServer;

beforeAll(async () => {
  const fx = await fixtures();
  reg = await startRegistry({ seedFrom: fx.registryData });
  // One instance at a time per project: a second spawn stays PENDING while the first runs.
  t = await startTestServer(
    {},
    { CONTREE_METRICS_TOKEN: METRICS_TOKEN, CONTREE_INSTANCE_MAX_CONCURRENCY: "1" },
  );
});
afterAll(async () => {
  await t?.close();
  await reg?.stop();
});

async function scrape(): Promise<Map<string, Family>> {
  const r = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await r.text());
}

/** The stored log of a finished operation (the events route answers once its completion is in). */
async function finished(id: string): Promise<{ status: string; events: Event[] }> {
  const op = await waitOperation(t, id);
  const text = await (await t.api(`/v1/operations/${id}/events`)).text();
  const events: Event[] = [];
  for (const block of text.split("\n\n")) {
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (data !== undefined) events.push(JSON.parse(data) as Event);
  }
  expect(events.at(-1)?.type).toBe("completion");
  return { status: String(op["status"]), events };
}

async function importImage(ref: string, tag?: string): Promise<string> {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${reg.host}/${ref}` }, ...(tag ? { tag } : {}) },
  });
  expect(r.status).toBe(202);
  return ((await r.json()) as { uuid: string }).uuid;
}

async function spawn(body: Record<string, unknown>): Promise<string> {
  const r = await t.api("/v1/instances", { method: "POST", json: { image: "tag:busybox:latest", ...body } });
  const j = (await r.json()) as { uuid: string; error?: string };
  expect(r.status, j.error).toBe(202);
  return j.uuid;
}

/** Scrapes until `ok` holds (the state it waits for is reached by a sandbox, not by time). */
async function scrapeUntil(ok: (m: Map<string, Family>) => boolean): Promise<Map<string, Family>> {
  const until = Date.now() + 30_000;
  for (;;) {
    const m = await scrape();
    if (ok(m)) return m;
    if (Date.now() > until) throw new Error("metrics never reached the expected state");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("server metrics", () => {
  it("/metrics is still refused without the admin or metrics token", async () => {
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${t.url}/metrics`, { headers: { authorization: "Bearer nope-0123456789abcdef" } }))
        .status,
    ).toBe(401);
    expect(
      (await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token}` } })).status,
    ).toBe(200);
  });

  it("operations, queue, sandboxes, imported and committed bytes move by what happened", async () => {
    const before = await scrape();
    const delta = (m: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
      sampleValue(m, name, labels) - sampleValue(before, name, labels);

    // Imports: one that fetches every layer, one that fails.
    const good = await finished(await importImage(FIXTURE_IMAGES.busybox, "busybox:latest"));
    expect(good.status).toBe("SUCCESS");
    const fetchedLayers = good.events.filter((e) => e.type === "progress" && e.data["reused"] === false);
    expect(fetchedLayers.length).toBeGreaterThan(0);
    const fetchedBytes = fetchedLayers.reduce((n, e) => n + Number(e.data["size"]), 0);
    const bad = await finished(await importImage("fixtures/busybox:nope"));
    expect(bad.status).toBe("FAILED");

    // A run that commits a change.
    const made = await finished(await spawn({ command: "echo metrics > /made-by-run", shell: true }));
    expect(made.status).toBe("SUCCESS");
    const completion = made.events.at(-1)?.data ?? {};
    expect(typeof completion["result_image_uuid"]).toBe("string");
    const committed = Number(completion["image_size_bytes"]);
    expect(committed).toBeGreaterThan(0);

    // A run kept running, and one queued behind it (concurrency 1).
    const running = await spawn({ command: "sleep", args: ["60"], timeout: 120, disposable: true });
    const during = await scrapeUntil((m) => sampleValue(m, "contree_sandboxes_running") === 1);
    const queued = await spawn({ command: "true", disposable: true });
    await new Promise((r) => setTimeout(r, 50));
    const waiting = await scrape();
    expect(sampleValue(during, "contree_operations", { kind: "instance", status: "EXECUTING" })).toBe(1);
    expect(sampleValue(waiting, "contree_operations", { kind: "instance", status: "PENDING" })).toBe(1);
    expect(sampleValue(waiting, "contree_operations", { kind: "instance", status: "EXECUTING" })).toBe(1);
    expect(sampleValue(waiting, "contree_operations", { kind: "image_import", status: "PENDING" })).toBe(0);
    expect(
      sampleValue(waiting, "contree_operation_oldest_pending_age_seconds", { kind: "instance" }),
    ).toBeGreaterThanOrEqual(0.05);
    expect(
      sampleValue(waiting, "contree_operation_oldest_pending_age_seconds", { kind: "image_import" }),
    ).toBe(0);
    expect((await t.api(`/v1/operations/${queued}`, { method: "DELETE" })).status).toBe(202);
    expect((await t.api(`/v1/operations/${running}`, { method: "DELETE" })).status).toBe(202);
    expect((await finished(queued)).status).toBe("CANCELLED");
    expect((await finished(running)).status).toBe("CANCELLED");

    const after = await scrape();
    const finishedTotal = (kind: string, status: string) =>
      delta(after, "contree_operations_finished_total", { kind, status });
    expect(finishedTotal("image_import", "SUCCESS")).toBe(1);
    expect(finishedTotal("image_import", "FAILED")).toBe(1);
    expect(finishedTotal("instance", "SUCCESS")).toBe(1);
    expect(finishedTotal("instance", "CANCELLED")).toBe(2);
    expect(finishedTotal("instance", "FAILED")).toBe(0);
    expect(
      delta(after, "contree_operation_duration_seconds_count", { kind: "instance", status: "CANCELLED" }),
    ).toBe(2);
    expect(
      delta(after, "contree_operation_duration_seconds_count", { kind: "image_import", status: "FAILED" }),
    ).toBe(1);
    // The queued run never started: only three operations ended a queue wait of each kind's.
    expect(delta(after, "contree_operation_queue_wait_seconds_count", { kind: "instance" })).toBe(2);
    expect(delta(after, "contree_operation_queue_wait_seconds_count", { kind: "image_import" })).toBe(2);
    expect(delta(after, "contree_image_import_fetched_bytes_total")).toBe(fetchedBytes);
    expect(delta(after, "contree_image_import_layers_total", { reused: "false" })).toBe(fetchedLayers.length);
    expect(delta(after, "contree_instance_committed_bytes_total")).toBe(committed);
    expect(delta(after, "contree_sandbox_processes_started_total", { process: "main" })).toBe(2);
    expect(delta(after, "contree_sandbox_process_exits_total", { process: "main", how: "exited" })).toBe(1);
    expect(sampleValue(after, "contree_sandboxes_running")).toBe(0);
    // Two runs started (one committed, one cancelled while running): each stage they entered once.
    for (const stage of ["prepare", "start", "run", "commit", "teardown"])
      expect(delta(after, "contree_run_stage_duration_seconds_count", { stage }), stage).toBe(
        stage === "commit" ? 1 : 2,
      );
    for (const status of ["PENDING", "ASSIGNED", "EXECUTING"])
      expect(sampleValue(after, "contree_operations", { kind: "instance", status })).toBe(0);
    expect(sampleValue(after, "contree_operation_oldest_pending_age_seconds", { kind: "instance" })).toBe(0);
    expect(sampleValue(after, "contree_storage_free_bytes")).toBeGreaterThan(0);
    expect(sampleValue(after, "contree_storage_refusing_writes")).toBe(0);
    // The HTTP families are still there beside the new ones.
    expect(
      delta(after, "contree_http_requests_total", { method: "POST", route: "/v1/instances", status: "202" }),
    ).toBe(3);
  });
});

describe("operations failed by a restart", () => {
  it("are counted when recovery fails them (their kind read from the store)", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "contree-metrics-restart-"));
    let again: TestServer | undefined;
    try {
      // What a crash leaves: rows still ASSIGNED and EXECUTING, nothing running.
      const store = openMetadata(dataDir);
      const project = await store.projects.create("crashed");
      for (const [id, kind, to] of [
        ["crash-instance", "instance", "EXECUTING"],
        ["crash-import", "image_import", "ASSIGNED"],
      ] as const) {
        await store.operations.insert({
          id,
          projectId: project.id,
          kind,
          metadata: {},
          createdAt: Date.now(),
        });
        expect(await store.operations.transition(id, ["PENDING"], "ASSIGNED")).toBe(true);
        if (to === "EXECUTING") expect(await store.operations.transition(id, ["ASSIGNED"], to)).toBe(true);
      }
      await store.close();
      again = await startTestServer({ dataDir }, { CONTREE_METRICS_TOKEN: METRICS_TOKEN });
      const r = await fetch(`${again.url}/metrics`, {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      const m = parseExposition(await r.text());
      expect(
        sampleValue(m, "contree_operations_finished_total", { kind: "instance", status: "FAILED" }),
      ).toBe(1);
      expect(
        sampleValue(m, "contree_operations_finished_total", { kind: "image_import", status: "FAILED" }),
      ).toBe(1);
      expect(sampleValue(m, "contree_operations", { kind: "instance", status: "EXECUTING" })).toBe(0);
      expect(sampleValue(m, "contree_operations", { kind: "image_import", status: "ASSIGNED" })).toBe(0);
    } finally {
      await again?.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
