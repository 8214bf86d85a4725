/**
 * Image imports that go wrong, through the API of a real in-process server, against a real
 * registry behind the fault-injecting proxy. Every test pulls an image made just for it (random
 * bytes, pushed with the registry's upload API) so no layer is ever reused from an earlier test.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "../harness/daemon.js";
import { type FaultyProxy, startFaultyProxy } from "../harness/faulty-proxy.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import {
  pushImage,
  REGISTRY_PASSWORD,
  REGISTRY_USER,
  type RegistryHandle,
  startRegistry,
} from "../harness/registry.js";

const run = promisify(execFile);

interface PushedImage {
  repo: string;
  layerDigest: string;
}

/** Pushes a one-layer image holding `bytes` random bytes (uncompressed or gzip) to a no-auth registry. */
async function pushRandomImage(
  reg: RegistryHandle,
  repo: string,
  bytes: number,
  gzip = false,
): Promise<PushedImage> {
  const dir = await mkdtemp(join(tmpdir(), "contree-rnd-image-"));
  try {
    await writeFile(join(dir, "random.bin"), randomBytes(bytes));
    await run("tar", [
      "--create",
      "--file",
      join(dir, "layer.tar"),
      "--directory",
      dir,
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mtime=@0",
      "random.bin",
    ]);
    const tarBytes = await readFile(join(dir, "layer.tar"));
    const diffId = sha(tarBytes);
    let layer = tarBytes;
    if (gzip) {
      await run("gzip", ["-n", "-1", join(dir, "layer.tar")]);
      layer = await readFile(join(dir, "layer.tar.gz"));
    }
    const [layerDigest] = await pushImage(reg, repo, [
      { blob: layer, diffId, mediaType: `application/vnd.oci.image.layer.v1.tar${gzip ? "+gzip" : ""}` },
    ]);
    if (layerDigest === undefined) throw new Error("no layer pushed");
    return { repo, layerDigest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let reg: RegistryHandle;
let t: TestServer;
let proxy: FaultyProxy | undefined;
let seq = 0;

beforeAll(async () => {
  reg = await startRegistry({ seedFrom: (await fixtures()).registryData });
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
  await reg?.stop();
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

/** A fresh image of `bytes` random bytes and a proxy in front of the registry. */
async function setup(bytes: number, gzip = false): Promise<{ image: PushedImage; proxy: FaultyProxy }> {
  const image = await pushRandomImage(reg, `failures/img-${process.pid}-${++seq}`, bytes, gzip);
  proxy = await startFaultyProxy({ upstream: reg.url });
  return { image, proxy };
}

async function startImport(host: string, repo: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${host}/${repo}` }, ...extra },
  });
  expect(r.status).toBe(202);
  return ((await r.json()) as { uuid: string }).uuid;
}

async function opStatus(id: string): Promise<string> {
  return String(((await (await t.api(`/v1/operations/${id}`)).json()) as { status: string }).status);
}

const listing = async (sub: string) => (await readdir(join(t.dataDir, sub))).sort();
const imageCount = async () =>
  (
    await t.server.store.images.list((await t.server.store.projects.resolve("default")).id, "", {
      limit: 10_000,
      offset: 0,
    })
  ).length;

/** Staging empty, layers and image rows exactly as before: nothing of the import is left. */
async function expectNothingLeft(before: { layers: string[]; images: number }): Promise<void> {
  expect(await listing("staging")).toEqual([]);
  expect(await listing("layers")).toEqual(before.layers);
  expect(await imageCount()).toBe(before.images);
}

const snapshot = async () => ({ layers: await listing("layers"), images: await imageCount() });
const blobGets = (p: FaultyProxy, digest: string) =>
  p.requests.filter((r) => r.method === "GET" && r.path.endsWith(`/blobs/${digest}`));

describe("import failures through the API", () => {
  it("cancel during a throttled blob: CANCELLED, completion event, nothing left behind", async () => {
    const { image, proxy } = await setup(2_000_000);
    proxy.addFault({
      match: new RegExp(`/blobs/${image.layerDigest}$`),
      fault: { kind: "throttle", bytesPerSecond: 100_000 },
    });
    const before = await snapshot();
    const id = await startImport(proxy.host, image.repo, { tag: "cancel-me" });
    await waitFor("the layer download", () => blobGets(proxy, image.layerDigest).length > 0);
    await waitFor("a staged layer dir", async () => (await listing("staging")).length > 0);
    expect(await opStatus(id)).toBe("EXECUTING");

    const del = await t.api(`/v1/operations/${id}`, { method: "DELETE" });
    expect(del.status).toBe(202);
    const op = await waitOperation(t, id);
    expect(op["status"]).toBe("CANCELLED");
    expect(op["result_image_uuid"] ?? null).toBeNull();
    const events = await (await t.api(`/v1/operations/${id}/events`)).text();
    const last = events.trim().split("\n\n").at(-1) ?? "";
    expect(last).toContain("event: completion");
    expect(last).toContain('"status":"CANCELLED"');
    await expectNothingLeft(before);
    expect((await t.api("/v1/images?tag=cancel-me").then((r) => r.json())) as { images: unknown[] }).toEqual({
      images: [],
    });
    // A second DELETE on a terminal operation is a conflict.
    expect((await t.api(`/v1/operations/${id}`, { method: "DELETE" })).status).toBe(409);
  });

  it("a corrupted layer fails with digest mismatch and leaves nothing", async () => {
    const { image, proxy } = await setup(1_500_000);
    proxy.addFault({
      match: new RegExp(`/blobs/${image.layerDigest}$`),
      fault: { kind: "corrupt", offset: 600_000 },
    });
    const before = await snapshot();
    const op = await waitOperation(t, await startImport(proxy.host, image.repo));
    expect(op["status"]).toBe("FAILED");
    expect(String(op["error"])).toMatch(/digest mismatch/);
    await expectNothingLeft(before);
  });

  it("a corrupted gzip layer fails with a clear error and leaves nothing", async () => {
    const { image, proxy } = await setup(1_500_000, true);
    proxy.addFault({
      match: new RegExp(`/blobs/${image.layerDigest}$`),
      fault: { kind: "corrupt", offset: 600_000 },
    });
    const before = await snapshot();
    const op = await waitOperation(t, await startImport(proxy.host, image.repo));
    expect(op["status"]).toBe("FAILED");
    expect(String(op["error"])).toMatch(/digest mismatch/);
    await expectNothingLeft(before);
  });

  it("a registry that goes away mid-pull fails clearly and leaves nothing", async () => {
    const { image, proxy } = await setup(2_000_000);
    proxy.addFault({
      match: new RegExp(`/blobs/${image.layerDigest}$`),
      fault: { kind: "throttle", bytesPerSecond: 200_000 },
    });
    const before = await snapshot();
    const id = await startImport(proxy.host, image.repo);
    await waitFor("the layer download", () => blobGets(proxy, image.layerDigest).length > 0);
    await new Promise((r) => setTimeout(r, 300));
    await proxy.stop();
    const op = await waitOperation(t, id);
    expect(op["status"]).toBe("FAILED");
    expect(String(op["error"])).toMatch(
      new RegExp(
        `registry ${proxy.host.replace(/\./g, "\\.")} .*lost while downloading blob|^registry is unreachable or not an allowed destination$`,
      ),
    );
    await expectNothingLeft(before);
  });

  it("enforces the import timeout against a stalled blob", async () => {
    const { image, proxy } = await setup(1_000_000);
    proxy.addFault({
      match: new RegExp(`/blobs/${image.layerDigest}$`),
      fault: { kind: "stall", afterBytes: 10_000 },
    });
    const before = await snapshot();
    const t0 = Date.now();
    const op = await waitOperation(t, await startImport(proxy.host, image.repo, { timeout: 1 }));
    expect(op["status"]).toBe("FAILED");
    expect(String(op["error"])).toMatch(/timed out after 1 s/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    await expectNothingLeft(before);
  });

  it("a missing tag fails with manifest unknown", async () => {
    const before = await snapshot();
    const op = await waitOperation(t, await startImport(reg.host, "fixtures/busybox:no-such-tag"));
    expect(op["status"]).toBe("FAILED");
    expect(String(op["error"])).toMatch(/manifest unknown/);
    await expectNothingLeft(before);
  });

  it("images_import_max_concurrency = 1 runs one import of the project at a time", async () => {
    const a = await setup(800_000);
    const b = await pushRandomImage(reg, `failures/img-${process.pid}-${++seq}`, 800_000);
    a.proxy.addFault({ match: /\/blobs\/sha256:/, fault: { kind: "throttle", bytesPerSecond: 400_000 } });
    const project = await t.server.store.projects.resolve("default");
    await t.server.store.projects.setLimits(project.id, { images_import_max_concurrency: 1 });
    try {
      const ids = [await startImport(a.proxy.host, a.image.repo), await startImport(a.proxy.host, b.repo)];
      const seen: string[][] = [];
      for (;;) {
        const s = await Promise.all(ids.map(opStatus));
        seen.push(s);
        if (s.every((x) => ["SUCCESS", "FAILED", "CANCELLED"].includes(x))) break;
        await new Promise((r) => setTimeout(r, 30));
      }
      expect(seen.at(-1)).toEqual(["SUCCESS", "SUCCESS"]);
      const active = (x: string) => x === "ASSIGNED" || x === "EXECUTING";
      // Never both running; and the second one was seen waiting while the first ran.
      expect(seen.filter((s) => s.every(active))).toEqual([]);
      expect(seen.some((s) => s[0] === "EXECUTING" && s[1] === "PENDING")).toBe(true);
    } finally {
      await t.server.store.projects.setLimits(project.id, {});
    }
  });
});

describe("registry authentication through the API", () => {
  let htpasswd: RegistryHandle;
  let token: RegistryHandle;

  beforeAll(async () => {
    const fx = await fixtures();
    [htpasswd, token] = await Promise.all([
      startRegistry({ auth: "htpasswd", seedFrom: fx.registryData }),
      startRegistry({ auth: "token", seedFrom: fx.registryData, publicRepos: ["fixtures/busybox"] }),
    ]);
  });
  afterAll(async () => {
    await htpasswd?.stop();
    await token?.stop();
  });

  const creds = (password = REGISTRY_PASSWORD) => ({ username: REGISTRY_USER, password });
  const importFrom = async (
    r: RegistryHandle,
    repo: string,
    credentials?: { username: string; password: string },
  ) => {
    const res = await t.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${r.host}/${repo}`, ...(credentials ? { credentials } : {}) } },
    });
    expect(res.status).toBe(202);
    return waitOperation(t, ((await res.json()) as { uuid: string }).uuid);
  };

  it("htpasswd: wrong or missing credentials fail with unauthorized, right ones work", async () => {
    const wrong = await importFrom(htpasswd, FIXTURE_IMAGES.busybox, creds("not-the-password"));
    expect(wrong["status"]).toBe("FAILED");
    expect(String(wrong["error"])).toMatch(/unauthorized/);
    const none = await importFrom(htpasswd, FIXTURE_IMAGES.busybox);
    expect(none["status"]).toBe("FAILED");
    expect(String(none["error"])).toMatch(/unauthorized/);
    const ok = await importFrom(htpasswd, FIXTURE_IMAGES.busybox, creds());
    expect(ok["status"], String(ok["error"])).toBe("SUCCESS");
  });

  it("token auth: anonymous pull of a public repo, credentials for a private one", async () => {
    const anonPublic = await importFrom(token, FIXTURE_IMAGES.busybox);
    expect(anonPublic["status"], String(anonPublic["error"])).toBe("SUCCESS");
    // The MCP client sends empty credentials to mean anonymous.
    const emptyCreds = await importFrom(token, FIXTURE_IMAGES.busybox, { username: "", password: "" });
    expect(emptyCreds["status"], String(emptyCreds["error"])).toBe("SUCCESS");
    const anonPrivate = await importFrom(token, FIXTURE_IMAGES.features);
    expect(anonPrivate["status"]).toBe("FAILED");
    expect(String(anonPrivate["error"])).toMatch(/unauthorized/);
    const wrong = await importFrom(token, FIXTURE_IMAGES.features, creds("not-the-password"));
    expect(wrong["status"]).toBe("FAILED");
    expect(String(wrong["error"])).toMatch(/unauthorized/);
    const withCreds = await importFrom(token, FIXTURE_IMAGES.features, creds());
    expect(withCreds["status"], String(withCreds["error"])).toBe("SUCCESS");
  });
});

describe("credentials stay secret", () => {
  let d: Daemon | undefined;
  let htpasswd: RegistryHandle | undefined;
  let tokenReg: RegistryHandle | undefined;
  afterAll(async () => {
    await d?.stop();
    await htpasswd?.stop();
    await tokenReg?.stop();
  });

  it("never appear in GET /v1/operations[/{id}], events or the daemon's log output", async () => {
    const fx = await fixtures();
    [htpasswd, tokenReg, d] = await Promise.all([
      startRegistry({ auth: "htpasswd", seedFrom: fx.registryData }),
      startRegistry({ auth: "token", seedFrom: fx.registryData }),
      startDaemon({ env: { CONTREE_LOG_LEVEL: "trace" }, readyTimeoutMs: 120_000 }),
    ]);
    const daemon = d;
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${daemon.url}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${daemon.token}`,
          "content-type": "application/json",
          ...init.headers,
        },
      });
    const wrongPassword = "wrong-Pa55word-9f3e1c";
    const secrets = [
      REGISTRY_PASSWORD,
      wrongPassword,
      Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString("base64"),
      Buffer.from(`${REGISTRY_USER}:${wrongPassword}`).toString("base64"),
    ];
    const ids: string[] = [];
    for (const [r, password] of [
      [htpasswd, REGISTRY_PASSWORD],
      [htpasswd, wrongPassword],
      [tokenReg, REGISTRY_PASSWORD],
      [tokenReg, wrongPassword],
    ] as const) {
      const res = await api("/v1/images/import", {
        method: "POST",
        body: JSON.stringify({
          registry: {
            url: `docker://${r.host}/${FIXTURE_IMAGES.busybox}`,
            credentials: { username: REGISTRY_USER, password },
          },
        }),
      });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { uuid: string }).uuid);
    }
    const docs: string[] = [];
    const statuses: string[] = [];
    for (const id of ids) {
      let doc: { status: string };
      for (;;) {
        doc = (await (await api(`/v1/operations/${id}`)).json()) as { status: string };
        if (["SUCCESS", "FAILED", "CANCELLED"].includes(doc.status)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      statuses.push(doc.status);
      docs.push(JSON.stringify(doc), await (await api(`/v1/operations/${id}/events`)).text());
    }
    expect(statuses).toEqual(["SUCCESS", "FAILED", "SUCCESS", "FAILED"]);
    docs.push(await (await api("/v1/operations")).text());
    const logs = daemon.stdout() + daemon.stderr();
    expect(logs).toContain("operation finished");
    for (const s of secrets) {
      for (const doc of docs) expect(doc).not.toContain(s);
      expect(logs).not.toContain(s);
    }
  });
});
