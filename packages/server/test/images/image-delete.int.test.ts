import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allPermissions, issueToken } from "../../src/auth/tokens.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";
import { tenant } from "../harness/tenant.js";

type Api = (path: string, init?: RequestInit & { json?: unknown }) => Promise<Response>;
type Op = {
  status: string;
  error: string | null;
  image_uuid: string | null;
  result_image_uuid: string | null;
  result: { image: string | null };
  image_deleted?: boolean;
  result_image_deleted?: boolean;
  metadata: { result: { stdout: { value: string }; state: { exit_code: number } } };
};

/** Deletion (DELETE /v1/images/{uuid}) against a real server: tombstones are gone everywhere. */
describe("DELETE /v1/images/{uuid}", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  /** Ordinary tokens of two tenants. */
  let a: Awaited<ReturnType<typeof tenant>>;
  let b: Awaited<ReturnType<typeof tenant>>;
  let publicBusybox: string;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    const fx = await fixtures();
    reg = await startRegistry({ seedFrom: fx.registryData });
    // Into the public project (admin token + Project header): every tenant sees it by tag.
    const r = await t.api("/v1/images/import", {
      method: "POST",
      headers: { project: "public" },
      json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
    });
    const asPublic = (path: string) => t.api(path, { headers: { project: "public" } });
    const op = await waitOperation(asPublic, ((await r.json()) as { uuid: string }).uuid);
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    publicBusybox = String(op["result_image_uuid"]);
    a = await tenant(t, "team-a");
    b = await tenant(t, "team-b");
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function run(api: Api, image: string, command: string, disposable = false): Promise<Op> {
    const r = await api("/v1/instances", {
      method: "POST",
      json: { command, shell: true, image, disposable },
    });
    expect(r.status, await r.clone().text()).toBe(202);
    const { uuid } = (await r.json()) as { uuid: string };
    const get = (p: string) => api(p);
    return (await waitOperation(get, uuid)) as unknown as Op & { uuid: string };
  }

  async function child(api: Api, image: string, command: string): Promise<{ image: string; op: string }> {
    const r = await api("/v1/instances", { method: "POST", json: { command, shell: true, image } });
    const { uuid } = (await r.json()) as { uuid: string };
    const op = (await waitOperation((p) => api(p), uuid)) as unknown as Op;
    expect(op.status, String(op.error)).toBe("SUCCESS");
    expect(op.result.image).not.toBe(image);
    return { image: String(op.result.image), op: uuid };
  }

  const del = (api: Api, id: string, query = "") => api(`/v1/images/${id}${query}`, { method: "DELETE" });
  const errorOf = async (r: Response) => ((await r.json()) as { error: string; status: number }).error;

  it("deletes an untagged image: inspect, listing, spawn and a second delete then answer 404", async () => {
    const img = await child(a.api, "tag:busybox:latest", "echo a > /a");
    const r = await del(a.api, img.image);
    expect(r.status).toBe(200);
    const body = (await r.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ uuid: img.image, deleted: true, tags_removed: [] });
    expect(typeof body["deleted_at"]).toBe("string");

    const inspect = await a.api(`/v1/inspect/${img.image}/`);
    expect(inspect.status).toBe(404);
    expect(await errorOf(inspect)).toBe(`image ${img.image} was deleted`);
    expect((await a.api(`/v1/inspect/${img.image}/list?path=/`)).status).toBe(404);
    expect((await a.api(`/v1/inspect/${img.image}/download?path=/a`)).status).toBe(404);
    const listed = (await (await a.api(`/v1/images?uuid=${img.image}`)).json()) as { images: unknown[] };
    expect(listed.images).toEqual([]);
    const all = (await (await a.api("/v1/images?limit=1000")).json()) as { images: { uuid: string }[] };
    expect(all.images.map((i) => i.uuid)).not.toContain(img.image);

    const spawn = await a.api("/v1/instances", {
      method: "POST",
      json: { command: "true", image: img.image },
    });
    expect(spawn.status).toBe(404);
    expect(await errorOf(spawn)).toContain("was deleted");
    expect((await a.api(`/v1/images/${img.image}/tag`, { method: "PATCH", json: { tag: "x" } })).status).toBe(
      404,
    );
    expect((await del(a.api, img.image)).status).toBe(404);

    // The operation that made it keeps the id and says the image is deleted (same shape otherwise).
    const op = (await (await a.api(`/v1/operations/${img.op}`)).json()) as Op;
    expect(op.result_image_uuid).toBe(img.image);
    expect(op.result.image).toBe(img.image);
    expect(op.result_image_deleted).toBe(true);
    expect(op.image_deleted).toBeUndefined();
    const ops = (await (await a.api("/v1/operations?limit=1000")).json()) as (Op & { uuid: string })[];
    expect(ops.find((o) => o.uuid === img.op)?.result_image_deleted).toBe(true);
  }, 120_000);

  it("refuses a tagged image with 409 until force=true, which removes its tags", async () => {
    const img = await child(a.api, "tag:busybox:latest", "echo t > /t");
    for (const tag of ["keep:1", "keep:2"])
      expect((await a.api(`/v1/images/${img.image}/tag`, { method: "PATCH", json: { tag } })).status).toBe(
        200,
      );

    const refused = await del(a.api, img.image);
    expect(refused.status).toBe(409);
    const msg = await errorOf(refused);
    expect(msg).toContain("is tagged");
    expect(msg).toContain('"keep:1"');
    expect(msg).toContain("force=true");
    expect((await a.api(`/v1/inspect/${img.image}/`)).status).toBe(200);
    expect((await del(a.api, img.image, "?force=0")).status).toBe(409);

    const forced = await del(a.api, img.image, "?force=true");
    expect(forced.status).toBe(200);
    expect(((await forced.json()) as { tags_removed: string[] }).tags_removed).toEqual(["keep:1", "keep:2"]);
    // The tags went with it: resolving them is a 404, not a redirect to a tombstone.
    expect((await a.api("/v1/inspect/?tag=keep:1", { redirect: "manual" })).status).toBe(404);
    const byTag = (await (await a.api("/v1/images?tag=keep")).json()) as { images: unknown[] };
    expect(byTag.images).toEqual([]);
    const spawn = await a.api("/v1/instances", {
      method: "POST",
      json: { command: "true", image: "tag:keep:2" },
    });
    expect(spawn.status).toBe(404);
    const rows = await t.server.store.db
      .selectFrom("tags")
      .selectAll()
      .where("image_id", "=", img.image)
      .execute();
    expect(rows).toEqual([]);
  }, 120_000);

  it("another tenant can neither delete, see, tag nor run a project's image, deleted or not", async () => {
    const img = await child(a.api, "tag:busybox:latest", "echo mine > /m");
    const r = await del(b.api, img.image, "?force=true");
    expect(r.status).toBe(404);
    expect(await errorOf(r)).toBe("image not found");
    expect((await a.api(`/v1/inspect/${img.image}/`)).status).toBe(200);

    expect((await del(a.api, img.image)).status).toBe(200);
    // The other tenant does not learn that it existed: the same 404 as for a random id.
    for (const path of [`/v1/inspect/${img.image}/`, `/v1/inspect/${img.image}/list`]) {
      const res = await b.api(path);
      expect(res.status).toBe(404);
      expect(await errorOf(res)).toBe("image not found");
    }
    const tag = await b.api(`/v1/images/${img.image}/tag`, { method: "PATCH", json: { tag: "stolen" } });
    expect(tag.status).toBe(404);
    const spawn = await b.api("/v1/instances", {
      method: "POST",
      json: { command: "true", image: img.image },
    });
    expect(spawn.status).toBe(404);
    expect(await errorOf(spawn)).toBe("image not found");
  }, 120_000);

  it("a normal project cannot delete a public image (even with force), nor through a tag on it", async () => {
    const r = await del(b.api, publicBusybox, "?force=true");
    expect(r.status).toBe(403);
    expect(await errorOf(r)).toContain("public image");
    // A tenant's own tag on the public image changes nothing.
    expect(
      (await b.api(`/v1/images/${publicBusybox}/tag`, { method: "PATCH", json: { tag: "mybox" } })).status,
    ).toBe(200);
    expect((await del(b.api, publicBusybox, "?force=1")).status).toBe(403);
    expect((await b.api(`/v1/inspect/${publicBusybox}/`)).status).toBe(200);
    const op = await run(a.api, "tag:busybox:latest", "echo ok", true);
    expect(op.status).toBe("SUCCESS");
  }, 120_000);

  it("children of a deleted image still run and inspect; lineage says the parent is deleted", async () => {
    const parent = await child(a.api, "tag:busybox:latest", "echo p > /p");
    const kid = await child(a.api, parent.image, "echo c > /c");
    const grandkid = await child(a.api, kid.image, "echo g > /g");
    expect((await del(a.api, parent.image)).status).toBe(200);
    expect((await del(a.api, kid.image)).status).toBe(200);

    const runFromGrandkid = await run(a.api, grandkid.image, "cat /p /c /g");
    expect(runFromGrandkid.status).toBe("SUCCESS");
    expect(runFromGrandkid.metadata.result.stdout.value).toBe("p\nc\ng\n");
    const dl = await a.api(`/v1/inspect/${grandkid.image}/download?path=/p`);
    expect(dl.status).toBe(200);
    expect(await dl.text()).toBe("p\n");

    const rec = (await (await a.api(`/v1/inspect/${grandkid.image}/`)).json()) as Record<string, unknown>;
    expect(rec["parent_uuid"]).toBe(kid.image);
    expect(rec["parent_deleted"]).toBe(true);
    // The operation that made it: input deleted, result live.
    const op = (await (await a.api(`/v1/operations/${grandkid.op}`)).json()) as Op;
    expect(op.image_uuid).toBe(kid.image);
    expect(op.image_deleted).toBe(true);
    expect(op.result_image_deleted).toBeUndefined();
    // A live parent: no flag at all (the record is exactly as before).
    const live = await child(a.api, grandkid.image, "true > /x");
    const liveRec = (await (await a.api(`/v1/inspect/${live.image}/`)).json()) as Record<string, unknown>;
    expect(liveRec).not.toHaveProperty("parent_deleted");
    const listed = (await (await a.api(`/v1/images?uuid=${grandkid.image}`)).json()) as {
      images: Record<string, unknown>[];
    };
    expect(listed.images[0]?.["parent_deleted"]).toBe(true);
  }, 180_000);

  it("a run queued from an image that is then deleted still runs, and its operation says so", async () => {
    const img = await child(a.api, "tag:busybox:latest", "echo queued > /qd");
    await t.server.store.projects.setLimits(a.projectId, { instance_max_concurrency: 1 });
    try {
      const r = await a.api("/v1/instances", {
        method: "POST",
        json: { command: "sleep 60", shell: true, image: "tag:busybox:latest", disposable: true },
      });
      const sleeper = ((await r.json()) as { uuid: string }).uuid;
      await expect
        .poll(async () => (await t.server.store.operations.get(sleeper))?.status, { timeout: 30_000 })
        .toBe("EXECUTING");
      const q = await a.api("/v1/instances", {
        method: "POST",
        json: { command: "cat /qd", shell: true, image: img.image },
      });
      const queued = ((await q.json()) as { uuid: string }).uuid;
      expect((await t.server.store.operations.get(queued))?.status).toBe("PENDING");
      expect((await del(a.api, img.image)).status).toBe(200);
      expect((await a.api(`/v1/operations/${sleeper}`, { method: "DELETE" })).status).toBe(202);
      const op = (await waitOperation((p) => a.api(p), queued)) as unknown as Op;
      expect(op.status, String(op.error)).toBe("SUCCESS");
      expect(op.metadata.result.stdout.value).toBe("queued\n");
      expect(op.image_uuid).toBe(img.image);
      expect(op.image_deleted).toBe(true);
    } finally {
      await t.server.store.projects.setLimits(a.projectId, {});
    }
  }, 120_000);

  it("needs the delete_image permission", async () => {
    const img = await child(a.api, "tag:busybox:latest", "echo q > /q");
    const project = await t.server.store.projects.findByName("team-a");
    const { secret } = await issueToken(t.server.store, {
      projectId: String(project?.id),
      permissions: { ...allPermissions(true), delete_image: false },
    });
    const r = await t.api(`/v1/images/${img.image}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(r.status).toBe(403);
    expect(await errorOf(r)).toContain('"delete_image"');
    expect((await a.api(`/v1/inspect/${img.image}/`)).status).toBe(200);
  }, 120_000);

  it("the admin token may delete a public image from the public project", async () => {
    const img = await child(
      (p, init) => t.api(p, { ...init, headers: { ...(init?.headers as object), project: "public" } }),
      publicBusybox,
      "echo pub > /pub",
    );
    expect((await b.api(`/v1/inspect/${img.image}/`)).status).toBe(200);
    const r = await t.api(`/v1/images/${img.image}`, { method: "DELETE", headers: { project: "public" } });
    expect(r.status).toBe(200);
    expect((await b.api(`/v1/inspect/${img.image}/`)).status).toBe(404);
  }, 120_000);
});
