import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

describe("image import through the API", () => {
  let reg: RegistryHandle;
  let t: TestServer;

  beforeAll(async () => {
    const fx = await fixtures();
    reg = await startRegistry({ seedFrom: fx.registryData });
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function importImage(ref: string, tag?: string) {
    const r = await t.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/${ref}` }, ...(tag ? { tag } : {}) },
    });
    expect(r.status).toBe(202);
    const { uuid } = (await r.json()) as { uuid: string };
    expect(r.headers.get("location")).toBe(`/v1/operations/${uuid}`);
    return waitOperation(t, uuid);
  }

  it("imports an OCI index for the host platform, tags it and lists it", async () => {
    const op = await importImage(FIXTURE_IMAGES.busybox, "busybox:latest");
    expect(op["status"]).toBe("SUCCESS");
    expect(op["kind"]).toBe("image_import");
    const result = op["result"] as { image: string; tag: string };
    expect(result.tag).toBe("busybox:latest");
    expect(op["result_image_uuid"]).toBe(result.image);
    const list = (await (await t.api("/v1/images?tag=busybox")).json()) as {
      images: Array<{ uuid: string; tag: string; created_at: string }>;
    };
    expect(list.images[0]?.uuid).toBe(result.image);
    expect(list.images[0]?.tag).toBe("busybox:latest");
    expect(typeof list.images[0]?.created_at).toBe("string");
  });

  it("re-importing an unchanged image reuses every layer", async () => {
    const a = await importImage(FIXTURE_IMAGES.busyboxV2s2);
    const b = await importImage(FIXTURE_IMAGES.busyboxV2s2);
    expect(a["status"]).toBe("SUCCESS");
    expect(b["status"]).toBe("SUCCESS");
    const events = await (await t.api(`/v1/operations/${String(b["uuid"])}/events`)).text();
    expect(events).toContain('"reused":true');
    expect(events).not.toContain('"reused":false');
    expect(events.trim().split("\n\n").at(-1)).toContain("event: completion");
  });

  it("imports zstd and uncompressed layers and Docker manifest lists", async () => {
    for (const ref of [
      FIXTURE_IMAGES.busyboxZstd,
      FIXTURE_IMAGES.busyboxUncompressed,
      FIXTURE_IMAGES.busyboxDocker,
      FIXTURE_IMAGES.features,
    ]) {
      const op = await importImage(ref);
      expect(op["status"], `${ref}: ${String(op["error"])}`).toBe("SUCCESS");
    }
  });

  it("a missing tag fails with a clear error", async () => {
    const op = await importImage("fixtures/busybox:nope");
    expect(op["status"]).toBe("FAILED");
    expect(String(op["error"])).toMatch(/manifest unknown/);
  });

  it("masks credentials in the operation metadata", async () => {
    const r = await t.api("/v1/images/import", {
      method: "POST",
      json: {
        registry: {
          url: `docker://${reg.host}/${FIXTURE_IMAGES.busybox}`,
          credentials: { username: "u", password: "hunter2" },
        },
      },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    const op = await waitOperation(t, uuid);
    expect(JSON.stringify(op)).not.toContain("hunter2");
    expect(
      (op["metadata"] as { registry: { credentials: { password: string } } }).registry.credentials.password,
    ).toBe("<MASKED>");
  });

  it("rejects bad import requests with 400", async () => {
    for (const body of [
      {},
      { registry: { url: "" } },
      { registry: { url: "UPPER/Case" } },
      { registry: { url: "busybox" }, timeout: "5" },
      { registry: { url: "busybox" }, tag: "bad tag" },
    ]) {
      const r = await t.api("/v1/images/import", { method: "POST", json: body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      const e = (await r.json()) as { error: string; status: number };
      expect(e.status).toBe(400);
    }
  });
});
