/**
 * Storage usage and the storage quota against a real server (issue 12 §4): a project over its
 * `storage_max_bytes` (set with `contree-server project update`, shown by whoami) gets a clear
 * 409 for new runs and imports while disposable runs go on and nothing it has is touched; the
 * admin usage endpoint, `contree-server usage` and the metrics agree with the rows; a deletion
 * brings the project back under. The GC's report reaches the metrics through `gcObserved`.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";
import { tenant } from "../harness/tenant.js";

const BIN = path.resolve(import.meta.dirname, "../../bin/contree-server.js");
const LIMIT = 1024 * 1024;

describe("storage usage and quota", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let q: Awaited<ReturnType<typeof tenant>>;

  const cli = async (...args: string[]) =>
    (
      await promisify(execFile)(process.execPath, [BIN, ...args, "--data-dir", t.dataDir], {
        timeout: 60_000,
      })
    ).stdout;
  const spawn = (body: Record<string, unknown>) =>
    q.api("/v1/instances", { method: "POST", json: { image: "tag:busybox:latest", shell: true, ...body } });
  const importBusybox = (api: (p: string, i?: RequestInit & { json?: unknown }) => Promise<Response>) =>
    api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
    });
  const operationCount = async () =>
    Number(
      (
        await t.server.store.db
          .selectFrom("operations")
          .select((eb) => eb.fn.countAll().as("n"))
          .where("project_id", "=", q.projectId)
          .executeTakeFirstOrThrow()
      ).n,
    );

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    reg = await startRegistry({ seedFrom: (await fixtures()).registryData });
    // busybox in the public project: every tenant builds on it, nobody is charged for it.
    const r = await t.api("/v1/images/import", {
      method: "POST",
      headers: { project: "public" },
      json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
    });
    const op = await waitOperation(
      (p) => t.api(p, { headers: { project: "public" } }),
      ((await r.json()) as { uuid: string }).uuid,
      120_000,
    );
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    q = await tenant(t, "quota-tenant");
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  let runImage = "";

  it("project update sets storage_max_bytes and whoami shows it", async () => {
    const before = (await (await q.api("/v1/whoami")).json()) as { limits: Record<string, number> };
    expect(before.limits["storage_max_bytes"]).toBe(Number.MAX_SAFE_INTEGER);
    const printed = await cli("project", "update", "quota-tenant", "--set", `storage_max_bytes=${LIMIT}`);
    expect(printed).toContain(`storage_max_bytes\t${LIMIT}`);
    const after = (await (await q.api("/v1/whoami")).json()) as { limits: Record<string, number> };
    expect(after.limits["storage_max_bytes"]).toBe(LIMIT);
    // An unknown limit is refused (usage error, exit 2) and changes nothing.
    const bad = await cli("project", "update", "quota-tenant", "--set", "storage_max=1").catch(
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown limit "storage_max"') });
    const still = (await (await q.api("/v1/whoami")).json()) as { limits: Record<string, number> };
    expect(still.limits["storage_max_bytes"]).toBe(LIMIT);
  }, 60_000);

  it("over its quota a project's new runs and imports get 409, disposable runs go on, nothing is lost", async () => {
    // Under the quota (building on the public base costs nothing): accepted, and it goes over.
    const r = await spawn({ command: "dd if=/dev/zero of=/blob bs=1024 count=1100 2>/dev/null" });
    expect(r.status).toBe(202);
    const op = await waitOperation(q, ((await r.json()) as { uuid: string }).uuid, 120_000);
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    runImage = String(op["result_image_uuid"]);
    expect(runImage).toMatch(/^[0-9a-f-]{36}$/);

    const ops = await operationCount();
    // No usage pass ran since: the figure grew as the result was stored.
    const refused = await spawn({ command: "true" });
    expect(refused.status).toBe(409);
    const body = (await refused.json()) as { error: string; status: number };
    expect(body.status).toBe(409);
    expect(body.error).toMatch(
      /^storage quota exceeded: project "quota-tenant" uses 1\.1 MiB \(\d+ bytes\) of its 1\.0 MiB \(1048576 bytes\) \(storage_max_bytes\)/,
    );
    expect(body.error).toContain("Delete images and files");
    const imp = await importBusybox(q.api);
    expect(imp.status).toBe(409);
    expect(((await imp.json()) as { error: string }).error).toContain("storage quota exceeded");
    // Refused before anything was queued.
    expect(await operationCount()).toBe(ops);

    // A disposable run keeps nothing: not refused.
    const d = await spawn({ command: "echo hi", disposable: true });
    expect(d.status).toBe(202);
    expect((await waitOperation(q, ((await d.json()) as { uuid: string }).uuid, 120_000))["status"]).toBe(
      "SUCCESS",
    );

    // What it has is untouched: the image reads and runs (disposably).
    const ls = await q.api(`/v1/inspect/${runImage}/list?path=/`);
    expect(ls.status).toBe(200);
    const again = await q.api("/v1/instances", {
      method: "POST",
      json: { image: runImage, shell: true, command: "wc -c < /blob", disposable: true },
    });
    const doc = (await waitOperation(q, ((await again.json()) as { uuid: string }).uuid, 120_000)) as {
      metadata: { result: { stdout: { value: string } } };
    };
    expect(doc.metadata.result.stdout.value.trim()).toBe(String(1100 * 1024));
  }, 300_000);

  it("GET /v1/admin/usage and contree-server usage agree with the rows; admin tokens only", async () => {
    await t.server.usage.refresh();
    const layers = await t.server.store.db
      .selectFrom("images")
      .innerJoin("layers", "layers.id", "images.layer_id")
      .select("layers.size")
      .where("images.id", "=", runImage)
      .executeTakeFirstOrThrow();
    const pub = await t.server.store.db
      .selectFrom("images")
      .innerJoin("projects", "projects.id", "images.project_id")
      .select("images.size")
      .where("projects.name", "=", "public")
      .executeTakeFirstOrThrow();

    const r = await t.api("/v1/admin/usage?project=quota-tenant");
    expect(r.status).toBe(200);
    const view = (await r.json()) as {
      projects: Array<Record<string, unknown>>;
      totals: Record<string, number>;
    };
    expect(view.projects).toEqual([
      {
        project: "quota-tenant",
        images: 1,
        layers: expect.any(Number),
        files: 0,
        exclusive_bytes: layers.size,
        shared_bytes: pub.size,
        charged_bytes: layers.size,
        storage_max_bytes: LIMIT,
        layer_bytes: { exclusive: layers.size, shared: pub.size },
        file_bytes: { exclusive: 0, shared: 0 },
      },
    ]);
    expect(view.totals["images"]).toBe(2);

    expect((await q.api("/v1/admin/usage")).status).toBe(403);
    expect((await t.api("/v1/admin/usage?project=no-such")).status).toBe(404);
    const doc = (await (await t.api("/v1/openapi.json")).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toContain("/v1/admin/usage");

    const fromCli = JSON.parse(await cli("usage", "--json", "--project", "quota-tenant")) as typeof view;
    expect(fromCli.projects).toEqual(view.projects);
    const table = await cli("usage");
    expect(table.split("\n")[0]).toBe("PROJECT\tIMAGES\tLAYERS\tFILES\tEXCLUSIVE\tSHARED\tCHARGED\tQUOTA");
    expect(table).toMatch(/^quota-tenant\t1\t\d+\t0\t1\.1 MiB\t/m);
  }, 120_000);

  it("storage gauges and the GC's reports show on /metrics", async () => {
    const metric = async (line: string) => {
      const text = await (await t.api("/metrics")).text();
      const m = new RegExp(`^${line.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, "m").exec(text);
      return m ? Number(m[1]) : undefined;
    };
    expect(await metric("contree_storage_images")).toBe(2);
    expect(await metric('contree_storage_bytes{kind="layers"}')).toBeGreaterThan(1100 * 1024);
    expect(await metric('contree_storage_bytes{kind="database"}')).toBeGreaterThan(0);
    expect(await metric('contree_gc_runs_total{mode="sweep"}')).toBe(0);
    const report = {
      dryRun: false,
      startedAt: 1_700_000_000_000,
      durationMs: 1500,
      imagesExpired: 1,
      filesExpired: 2,
      tombstonesRemoved: 3,
      layersRemoved: 4,
      bytesFreed: 5000,
      blobsRemoved: 6,
      stagingRemoved: 7,
      runDirsRemoved: 8,
      leasesExpired: 9,
    };
    t.server.gcObserved(report);
    t.server.gcObserved({ ...report, dryRun: true, startedAt: 1_700_000_100_000 });
    expect(await metric('contree_gc_runs_total{mode="sweep"}')).toBe(1);
    expect(await metric('contree_gc_runs_total{mode="dry_run"}')).toBe(1);
    // A dry run frees nothing.
    expect(await metric("contree_gc_reclaimed_bytes_total")).toBe(5000);
    expect(await metric('contree_gc_removed_total{what="layers"}')).toBe(4);
    expect(await metric('contree_gc_removed_total{what="leases"}')).toBe(9);
    expect(await metric('contree_gc_duration_seconds_count{mode="sweep"}')).toBe(1);
    expect(await metric('contree_gc_duration_seconds_sum{mode="sweep"}')).toBe(1.5);
    expect(await metric('contree_gc_last_run_timestamp_seconds{mode="dry_run"}')).toBe(1_700_000_100);
  }, 60_000);

  it("deleting brings the project back under its quota", async () => {
    await t.server.store.db
      .updateTable("images")
      .set({ deleted_at: Date.now() })
      .where("id", "=", runImage)
      .execute();
    await t.server.usage.refresh();
    const r = await spawn({ command: "true" });
    expect(r.status).toBe(202);
    expect((await waitOperation(q, ((await r.json()) as { uuid: string }).uuid, 120_000))["status"]).toBe(
      "SUCCESS",
    );
  }, 120_000);
});
