import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Retention } from "../../src/images/retention.js";
import { TOUCH_INTERVAL_MS } from "../../src/metadata/repos/image-repo.js";
import { LeaseManager } from "../../src/snapshots/leases.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

const DAY = 86_400_000;

type Op = {
  status: string;
  error: string | null;
  result: { image: string | null };
  result_image_deleted?: boolean;
  metadata: { result: { stdout: { value: string } } };
};

/**
 * Retention against a real server. Time is moved by ageing rows (their creation and last use
 * pushed into the past), so leases and queued operations are the real ones.
 */
describe("retention (images/retention.ts)", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let retention: Retention;
  let projectId: string;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    ({ registry: reg } = await importBusybox(t));
    retention = new Retention(t.server.store, t.config.defaultLimits);
    projectId = String((await t.server.store.projects.findByName("default"))?.id);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function start(image: string, command: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: { command, shell: true, image, ...extra },
    });
    expect(r.status, await r.clone().text()).toBe(202);
    return ((await r.json()) as { uuid: string }).uuid;
  }
  /**
   * A run holds a lease on its input image until its teardown, just after its completion is
   * stored: what a test expects of an unheld image holds once no run lease is left.
   */
  async function settled(): Promise<void> {
    await expect
      .poll(async () => (await t.server.store.leases.live()).filter((l) => l.kind === "run").length, {
        timeout: 30_000,
        interval: 20,
      })
      .toBe(0);
  }
  async function run(image: string, command: string, extra: Record<string, unknown> = {}): Promise<Op> {
    const op = (await waitOperation(t, await start(image, command, extra))) as unknown as Op;
    expect(op.status, String(op.error)).toBe("SUCCESS");
    await settled();
    return op;
  }
  async function child(image: string, command: string): Promise<string> {
    return String((await run(image, command)).result.image);
  }
  /** Moves an image's (or file's) clock `ms` into the past. */
  async function ageImage(id: string, ms = 8 * DAY): Promise<void> {
    await t.server.store.db
      .updateTable("images")
      .set((eb) => ({
        created_at: eb("created_at", "-", ms),
        last_used_at: eb("last_used_at", "-", ms),
      }))
      .where("id", "=", id)
      .execute();
  }
  async function ageFile(id: string, ms = 2 * DAY): Promise<void> {
    await t.server.store.db
      .updateTable("files")
      .set((eb) => ({
        created_at: eb("created_at", "-", ms),
        updated_at: eb("updated_at", "-", ms),
        last_used_at: eb("last_used_at", "-", ms),
      }))
      .where("id", "=", id)
      .execute();
  }
  /** Through the listing, which (unlike an inspect) is not a use of the image. */
  const live = async (id: string) =>
    ((await (await t.api(`/v1/images?uuid=${id}`)).json()) as { images: unknown[] }).images.length === 1;
  const lastUsed = async (id: string) =>
    (
      await t.server.store.db
        .selectFrom("images")
        .select("last_used_at")
        .where("id", "=", id)
        .executeTakeFirst()
    )?.last_used_at;
  async function upload(text: string): Promise<string> {
    const r = await t.api("/v1/files", { method: "POST", body: text });
    expect(r.status).toBe(201);
    return ((await r.json()) as { uuid: string }).uuid;
  }
  const fileExists = async (id: string) => (await t.api(`/v1/files?uuid=${id}`)).status === 200;
  async function setLimits(limits: Record<string, number>): Promise<void> {
    await t.server.store.projects.setLimits(projectId, limits);
  }

  it("expires untagged images unused past the TTL; tagged ones and the children of expired ones live on", async () => {
    const parent = await child("tag:busybox:latest", "echo p > /p");
    const tagged = await child(parent, "echo t > /t");
    const kid = await child(parent, "echo k > /k");
    expect((await t.api(`/v1/images/${tagged}/tag`, { method: "PATCH", json: { tag: "keep" } })).status).toBe(
      200,
    );
    for (const id of [parent, tagged, kid]) await ageImage(id, 6 * DAY);
    await retention.expireImages();
    expect([await live(parent), await live(tagged), await live(kid)]).toEqual([true, true, true]);

    for (const id of [parent, tagged, kid]) await ageImage(id, 2 * DAY);
    expect(await retention.expireImages()).toBeGreaterThanOrEqual(2);
    expect([await live(parent), await live(tagged), await live(kid)]).toEqual([false, true, false]);
    expect(
      await live((await t.server.store.images.imageIdByTag(projectId, "busybox:latest")) as string),
    ).toBe(true);
    // The tagged child still runs and reads its expired parent's file.
    const op = await run("tag:keep", "cat /p /t");
    expect(op.metadata.result.stdout.value).toBe("p\nt\n");
    // The operation that made an expired image says so.
    const made = await t.server.store.images.getAny(kid);
    const doc = (await (await t.api(`/v1/operations/${made?.operationId}`)).json()) as Op;
    expect(doc.result.image).toBe(kid);
    expect(doc.result_image_deleted).toBe(true);
  }, 180_000);

  it("keeps an image an unexpired lease names, and lets it go once the lease is released", async () => {
    const img = await child("tag:busybox:latest", "echo l > /l");
    await ageImage(img);
    const leases = new LeaseManager(t.server.store);
    const lease = await leases.acquire({ kind: "test", images: [img] });
    try {
      await retention.expireImages();
      expect(await live(img)).toBe(true);
    } finally {
      await lease.release();
      leases.close();
    }
    await retention.expireImages();
    expect(await live(img)).toBe(false);
  }, 120_000);

  it("keeps the input images and files of queued and running operations; a run starting touches its image", async () => {
    await setLimits({ instance_max_concurrency: 1 });
    try {
      const running = await child("tag:busybox:latest", "echo r > /r");
      const queued = await child("tag:busybox:latest", "echo q > /q");
      const file = await upload(`queued-${Date.now()}`);
      const sleeper = await start(running, "sleep 60", { disposable: true });
      await expect
        .poll(async () => (await t.server.store.operations.get(sleeper))?.status, { timeout: 30_000 })
        .toBe("EXECUTING");
      const waiting = await start(queued, "cat /f", { files: { "/f": { uuid: file, mode: "0644" } } });
      expect((await t.server.store.operations.get(waiting))?.status).toBe("PENDING");
      await ageImage(running);
      await ageImage(queued);
      await ageFile(file);

      await retention.expireImages();
      await retention.expireFiles();
      expect(await live(running)).toBe(true);
      expect(await live(queued)).toBe(true);
      expect(await fileExists(file)).toBe(true);

      // Starting the queued run is a use of its image (the spawn's touch was aged away above).
      const before = await lastUsed(queued);
      expect((await t.api(`/v1/operations/${sleeper}`, { method: "DELETE" })).status).toBe(202);
      const op = (await waitOperation(t, waiting)) as unknown as Op;
      expect(op.status, String(op.error)).toBe("SUCCESS");
      await settled();
      expect(await lastUsed(queued)).toBeGreaterThan(Number(before) + 7 * DAY);

      // Once nothing holds them and their clocks are old again, both go.
      await ageImage(running);
      await ageImage(queued);
      await ageImage(String(op.result.image));
      await ageFile(file);
      await retention.expireImages();
      await retention.expireFiles();
      expect([await live(running), await live(queued), await fileExists(file)]).toEqual([
        false,
        false,
        false,
      ]);
    } finally {
      await setLimits({});
    }
  }, 180_000);

  it("a run from an image, an inspect of it and a child created from it restart its clock", async () => {
    const ran = await child("tag:busybox:latest", "echo a > /a");
    const inspected = await child("tag:busybox:latest", "echo b > /b");
    const listed = await child("tag:busybox:latest", "echo c > /c");
    const parent = await child("tag:busybox:latest", "echo d > /d");
    for (const id of [ran, inspected, listed, parent]) await ageImage(id);

    const before = Date.now();
    await run(ran, "true", { disposable: true });
    expect(await lastUsed(ran)).toBeGreaterThanOrEqual(before);
    expect((await t.api(`/v1/inspect/${inspected}/`)).status).toBe(200);
    expect((await t.api(`/v1/inspect/${listed}/list?path=/`)).status).toBe(200);
    await expect.poll(() => lastUsed(inspected)).toBeGreaterThan(Date.now() - DAY);
    await expect.poll(() => lastUsed(listed)).toBeGreaterThan(Date.now() - DAY);
    // A child created (the commit's insert touches the parent in its transaction).
    const rec = await t.server.store.images.getAny(parent);
    const childAt = Date.now();
    await t.server.store.images.insert({
      ...(rec as NonNullable<typeof rec>),
      id: "00000000-0000-4000-8000-00000000c41d",
      parentId: parent,
      createdAt: childAt,
    });
    expect(await lastUsed(parent)).toBe(childAt);

    await retention.expireImages();
    for (const id of [ran, inspected, listed, parent]) expect(await live(id), id).toBe(true);
  }, 180_000);

  it("a spawn touches its image at most once a minute", async () => {
    const img = await child("tag:busybox:latest", "echo s > /s");
    await ageImage(img);
    const before = Date.now();
    await run(img, "true", { disposable: true });
    const first = Number(await lastUsed(img));
    expect(first).toBeGreaterThanOrEqual(before);
    await run(img, "true", { disposable: true });
    expect(await lastUsed(img)).toBe(first);
    // The statement itself is throttled too (what another process's touch meets).
    expect(await t.server.store.images.touch([img], first + 1000)).toBe(0);
    expect(await t.server.store.images.touch([img], first + TOUCH_INTERVAL_MS + 1)).toBe(1);
  }, 120_000);

  it("expires files no run named past the files TTL; a run naming one restarts its clock", async () => {
    const unused = await upload(`unused-${Date.now()}`);
    const named = await upload(`named-${Date.now()}`);
    await ageFile(unused);
    await ageFile(named);
    const op = await run("tag:busybox:latest", "cat /n", {
      disposable: true,
      files: { "/n": { uuid: named, mode: "0644" } },
    });
    expect(op.metadata.result.stdout.value).toMatch(/^named-/);
    expect(await retention.expireFiles()).toBeGreaterThanOrEqual(1);
    expect(await fileExists(unused)).toBe(false);
    expect(await fileExists(named)).toBe(true);
    // A run naming an expired file is refused with a 404 (nothing is queued).
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: { command: "true", image: "tag:busybox:latest", files: { "/u": { uuid: unused, mode: "0644" } } },
    });
    expect(r.status).toBe(404);
  }, 120_000);

  it("a TTL of 0 keeps everything", async () => {
    await setLimits({ images_ttl_seconds: 0, files_ttl_seconds: 0 });
    try {
      const img = await child("tag:busybox:latest", "echo z > /z");
      const file = await upload(`zero-${Date.now()}`);
      await ageImage(img, 10_000 * DAY);
      await ageFile(file, 10_000 * DAY);
      expect(await retention.expireImages()).toBe(0);
      expect(await retention.expireFiles()).toBe(0);
      expect(await live(img)).toBe(true);
      expect(await fileExists(file)).toBe(true);
    } finally {
      await setLimits({});
    }
  }, 120_000);
  it("the server's own GC pass expires by retention first and collects the expired image in the same pass", async () => {
    const img = await child("tag:busybox:latest", "echo gone > /gone");
    const layer = (
      await t.server.store.db.selectFrom("images").select("layer_id").where("id", "=", img).executeTakeFirst()
    )?.layer_id;
    expect(layer).toBeTruthy();
    await ageImage(img, 8 * DAY);
    // Layer rows younger than the GC's grace are never candidates (an import writes them first).
    await t.server.store.db
      .updateTable("layers")
      .set((eb) => ({ created_at: eb("created_at", "-", DAY) }))
      .where("id", "=", String(layer))
      .execute();
    const report = await t.server.gc.run();
    expect(report.imagesExpired).toBeGreaterThanOrEqual(1);
    expect(await live(img)).toBe(false);
    // Nothing descends from it: its row and its own layer go in the same pass.
    const row = await t.server.store.db
      .selectFrom("images")
      .select("id")
      .where("id", "=", img)
      .executeTakeFirst();
    expect(row).toBeUndefined();
    const layerRow = await t.server.store.db
      .selectFrom("layers")
      .select("id")
      .where("id", "=", String(layer))
      .executeTakeFirst();
    expect(layerRow).toBeUndefined();
    // The pass reached the metrics through onReport.
    const metrics = await (await t.api("/metrics")).text();
    expect(metrics).toMatch(/^contree_gc_runs_total\{mode="sweep"\} [1-9]/m);
  }, 120_000);
});
