import { expect } from "vitest";
import { FIXTURE_IMAGES, fixtures } from "./fixtures.js";
import { type TestServer, waitOperation } from "./in-process.js";
import { type RegistryHandle, startRegistry } from "./registry.js";

/** Starts the fixture registry and imports busybox into the server as `busybox:latest`. */
export async function importBusybox(t: TestServer): Promise<{ registry: RegistryHandle; image: string }> {
  const fx = await fixtures();
  const registry = await startRegistry({ seedFrom: fx.registryData });
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}` }, tag: "busybox:latest" },
  });
  const { uuid } = (await r.json()) as { uuid: string };
  const op = await waitOperation(t, uuid);
  expect(op["status"], String(op["error"])).toBe("SUCCESS");
  return { registry, image: String(op["result_image_uuid"]) };
}
