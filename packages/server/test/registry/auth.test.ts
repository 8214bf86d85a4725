import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpRegistryClient } from "../../src/registry/http-registry-client.js";
import { parseImageReference } from "../../src/registry/reference.js";
import type { Credentials } from "../../src/registry/registry-client.js";
import { startFaultyProxy } from "../harness/faulty-proxy.js";
import { FIXTURE_IMAGES, type Fixtures, fixtures } from "../harness/fixtures.js";
import { appErrorOf, drainLayers } from "../harness/pull.js";
import { REGISTRY_PASSWORD, REGISTRY_USER, type RegistryHandle, startRegistry } from "../harness/registry.js";

const good: Credentials = { username: REGISTRY_USER, password: REGISTRY_PASSWORD };
const wrong: Credentials = { username: REGISTRY_USER, password: "not-the-password" };
/** The test registries, token servers and proxies all listen on loopback: allowed explicitly. */
const quick = { retry: { baseDelayMs: 10, maxDelayMs: 50 }, privateRegistries: ["127.0.0.0/8"] };

let fx: Fixtures;
beforeAll(async () => {
  fx = await fixtures();
});

async function pull(client: HttpRegistryClient, host: string, image: string, credentials?: Credentials) {
  const ref = parseImageReference(`${host}/${image}`);
  const img = await client.resolveManifest(ref, { credentials });
  const layers = await drainLayers(img, (d) => client.fetchBlob(ref, d, { credentials }));
  expect(layers.map((l) => l.diffId)).toEqual(img.config.diffIds);
  return img;
}

describe("htpasswd (Basic) registry", () => {
  let reg: RegistryHandle;
  beforeAll(async () => {
    reg = await startRegistry({ auth: "htpasswd", seedFrom: fx.registryData });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("pulls with the right credentials", async () => {
    await pull(new HttpRegistryClient(quick), reg.host, FIXTURE_IMAGES.busybox, good);
  });

  it("refuses anonymous pulls, also with the MCP's empty credentials", async () => {
    for (const credentials of [undefined, { username: "", password: "" }]) {
      const e = await appErrorOf(
        new HttpRegistryClient(quick).resolveManifest(
          parseImageReference(`${reg.host}/${FIXTURE_IMAGES.busybox}`),
          { credentials },
        ),
      );
      expect(e.kind).toBe("unauthenticated");
      expect(e.message).toMatch(/^unauthorized: /);
    }
  });

  it("refuses wrong credentials without echoing them", async () => {
    const e = await appErrorOf(
      new HttpRegistryClient(quick).resolveManifest(
        parseImageReference(`${reg.host}/${FIXTURE_IMAGES.busybox}`),
        { credentials: wrong },
      ),
    );
    expect(e.kind).toBe("unauthenticated");
    expect(e.message).toMatch(/rejected the credentials/);
    expect(e.message).not.toContain(wrong.password);
  });

  it("drops Authorization when a blob redirects to another host (CDN on 127.0.0.2)", async () => {
    const basic = `Basic ${Buffer.from(`${good.username}:${good.password}`).toString("base64")}`;
    const cdn = await startFaultyProxy({
      upstream: reg.url,
      listenHost: "127.0.0.2",
      upstreamAuthorization: basic,
    });
    const front = await startFaultyProxy({ upstream: reg.url });
    try {
      front.addFault({ match: /\/blobs\//, fault: { kind: "redirect", to: cdn.url } });
      await pull(new HttpRegistryClient(quick), front.host, FIXTURE_IMAGES.busyboxOci, good);
      const redirected = front.requests.filter((r) => r.status === 307);
      expect(redirected.length).toBeGreaterThanOrEqual(2); // config + layer
      expect(redirected.every((r) => r.authorization)).toBe(true);
      expect(cdn.requests.length).toBe(redirected.length);
      expect(cdn.requests.some((r) => r.authorization)).toBe(false);
    } finally {
      await front.stop();
      await cdn.stop();
    }
  });
});

describe("token (Bearer) registry", () => {
  let reg: RegistryHandle;
  beforeAll(async () => {
    reg = await startRegistry({
      auth: "token",
      seedFrom: fx.registryData,
      publicRepos: ["fixtures/busybox"],
    });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("gets an anonymous token for a public repository and reuses it", async () => {
    const proxy = await startFaultyProxy({ upstream: reg.url });
    try {
      await pull(new HttpRegistryClient(quick), proxy.host, FIXTURE_IMAGES.busybox);
      // One challenge, then manifest list, manifest, config and layer all ride on the same token.
      expect(proxy.requests.filter((r) => r.status === 401)).toHaveLength(1);
      expect(proxy.requests.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(4);
      expect(proxy.requests.filter((r) => r.status === 200).every((r) => r.authorization)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it("needs credentials for a private repository", async () => {
    const e = await appErrorOf(
      new HttpRegistryClient(quick).resolveManifest(
        parseImageReference(`${reg.host}/${FIXTURE_IMAGES.features}`),
      ),
    );
    expect(e.kind).toBe("unauthenticated");
    expect(e.message).toMatch(/^unauthorized: authentication required/);
    await pull(new HttpRegistryClient(quick), reg.host, FIXTURE_IMAGES.features, good);
  });

  it("refuses wrong credentials at the token service", async () => {
    const e = await appErrorOf(
      new HttpRegistryClient(quick).resolveManifest(
        parseImageReference(`${reg.host}/${FIXTURE_IMAGES.features}`),
        { credentials: wrong },
      ),
    );
    expect(e.kind).toBe("unauthenticated");
    expect(e.message).toMatch(/rejected the credentials/);
  });

  it("keeps tokens per credentials: a good token is not reused for other credentials", async () => {
    const client = new HttpRegistryClient(quick);
    await pull(client, reg.host, FIXTURE_IMAGES.features, good);
    const e = await appErrorOf(
      client.resolveManifest(parseImageReference(`${reg.host}/${FIXTURE_IMAGES.features}`)),
    );
    expect(e.kind).toBe("unauthenticated");
  });
});
