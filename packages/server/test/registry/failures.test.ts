import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sha256Of } from "../../src/core/digest.js";
import {
  HttpRegistryClient,
  type HttpRegistryClientOptions,
} from "../../src/registry/http-registry-client.js";
import { parseImageReference } from "../../src/registry/reference.js";
import type { ResolvedImage } from "../../src/registry/registry-client.js";
import { UNREACHABLE } from "../../src/registry/retry.js";
import { type FaultyProxy, startFaultyProxy } from "../harness/faulty-proxy.js";
import { FIXTURE_IMAGES, type Fixtures, fixtures } from "../harness/fixtures.js";
import { appErrorOf, drain } from "../harness/pull.js";
import { freePort, type RegistryHandle, startRegistry } from "../harness/registry.js";

/** The test registry and proxies listen on loopback: allowed explicitly. */
const LOOPBACK = ["127.0.0.0/8"];
const fast: HttpRegistryClientOptions = {
  retry: { baseDelayMs: 10, maxDelayMs: 50, attempts: 4 },
  privateRegistries: LOOPBACK,
};

let fx: Fixtures;
let reg: RegistryHandle;
let proxy: FaultyProxy;
let image: ResolvedImage;

beforeAll(async () => {
  fx = await fixtures();
  reg = await startRegistry({ seedFrom: fx.registryData });
  image = await new HttpRegistryClient({ privateRegistries: LOOPBACK }).resolveManifest(
    parseImageReference(`${reg.host}/${FIXTURE_IMAGES.busyboxUncompressed}`),
  );
});
afterAll(async () => {
  await reg?.stop();
});
afterEach(async () => {
  await proxy?.stop();
});

const layer = () => {
  const l = image.manifest.layers[0];
  if (!l) throw new Error("fixture has no layer");
  return l;
};
const viaProxy = (img = FIXTURE_IMAGES.busyboxUncompressed) => parseImageReference(`${proxy.host}/${img}`);

describe("blob integrity", () => {
  it("fails a corrupted blob with data_loss digest mismatch", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "corrupt", offset: 1000 } });
    const stream = await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer());
    const e = await appErrorOf(drain(stream));
    expect(e.kind).toBe("data_loss");
    expect(e.message).toMatch(/^digest mismatch for blob sha256:/);
  });

  it("fails a corrupted manifest and config", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "corrupt", offset: 10 } });
    const e = await appErrorOf(new HttpRegistryClient(fast).resolveManifest(viaProxy()));
    expect(e.kind).toBe("data_loss");
    expect(e.message).toMatch(/digest mismatch for config/);
  });

  it("resumes with Range after the connection drops mid-blob", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "drop", afterBytes: 700_000 }, times: 1 });
    const n = await drain(await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer()));
    expect(n).toBe(layer().size);
    const blobGets = proxy.requests.filter((r) => r.path.includes("/blobs/"));
    expect(blobGets).toHaveLength(2);
    expect(blobGets[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/=(\d+)-/.exec(blobGets[1]?.range ?? "")?.[1])).toBeGreaterThan(0);
  });

  it("gives up with unavailable when the registry keeps dropping the connection", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "drop", afterBytes: 100_000 } });
    const e = await appErrorOf(drain(await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer())));
    expect(e.kind).toBe("unavailable");
    expect(e.message).toMatch(/lost while downloading blob/);
  });

  it("fails with unavailable when the registry goes away mid-pull", async () => {
    const own = await startRegistry({ seedFrom: fx.registryData });
    try {
      proxy = await startFaultyProxy({ upstream: own.url });
      proxy.addFault({ match: /\/blobs\//, fault: { kind: "throttle", bytesPerSecond: 2_000_000 } });
      const stream = await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer());
      let seen = 0;
      const result = appErrorOf(
        (async () => {
          for await (const c of stream) {
            seen += (c as Buffer).length;
            if (seen > 200_000 && own) void Promise.all([own.stop(), proxy.stop()]);
          }
        })(),
      );
      const e = await result;
      expect(e.kind).toBe("unavailable");
      expect(seen).toBeLessThan(layer().size);
    } finally {
      await own.stop();
    }
  });
});

describe("retries and rate limits", () => {
  it("waits for Retry-After on 429, then succeeds", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({
      match: /\/manifests\//,
      fault: { kind: "status", status: 429, retryAfter: "1" },
      times: 1,
    });
    const t0 = Date.now();
    const img = await new HttpRegistryClient(fast).resolveManifest(viaProxy());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(img.manifestDigest).toBe(image.manifestDigest);
    expect(proxy.requests.filter((r) => r.path.includes("/manifests/")).map((r) => r.status)).toEqual([
      429, 200,
    ]);
  });

  it("retries 503 with backoff", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "status", status: 503 }, times: 2 });
    expect(await drain(await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer()))).toBe(layer().size);
  });

  it("does not sit out a long Retry-After: unavailable with retryAfter", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/manifests\//, fault: { kind: "status", status: 429, retryAfter: "120" } });
    const e = await appErrorOf(
      new HttpRegistryClient({ ...fast, retry: { ...fast.retry, maxRetryAfterMs: 2000 } }).resolveManifest(
        viaProxy(),
      ),
    );
    expect(e.kind).toBe("unavailable");
    expect(e.retryAfter).toBe(120);
    expect(e.message).toMatch(/rate limiting/);
  });

  it("gives up after the bounded number of attempts", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/manifests\//, fault: { kind: "status", status: 502 } });
    const e = await appErrorOf(new HttpRegistryClient(fast).resolveManifest(viaProxy()));
    expect(e.kind).toBe("unavailable");
    expect(proxy.requests).toHaveLength(4);
  });
});

describe("cancellation and timeouts", () => {
  it("stops promptly when aborted mid-download", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "throttle", bytesPerSecond: 200_000 } });
    const ac = new AbortController();
    const stream = await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer(), { signal: ac.signal });
    setTimeout(() => ac.abort(), 300);
    const t0 = Date.now();
    const e = await appErrorOf(drain(stream));
    const afterAbort = Date.now() - t0 - 300;
    expect(e.kind).toBe("cancelled");
    expect(afterAbort).toBeLessThan(250);
    expect(stream.destroyed).toBe(true);
  });

  it("aborting before the call rejects at once", async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${reg.host}/x`), {
        signal: ac.signal,
      }),
    );
    expect(e.kind).toBe("cancelled");
  });

  it("an AbortSignal.timeout is reported as deadline_exceeded", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "stall", afterBytes: 1000 } });
    const stream = await new HttpRegistryClient(fast).fetchBlob(viaProxy(), layer(), {
      signal: AbortSignal.timeout(300),
    });
    expect((await appErrorOf(drain(stream))).kind).toBe("deadline_exceeded");
  });

  it("a stalled body hits the idle timeout: deadline_exceeded", async () => {
    proxy = await startFaultyProxy({ upstream: reg.url });
    proxy.addFault({ match: /\/blobs\//, fault: { kind: "stall", afterBytes: 10_000 } });
    const client = new HttpRegistryClient({
      ...fast,
      idleTimeoutMs: 200,
      retry: { ...fast.retry, attempts: 2 },
    });
    const e = await appErrorOf(drain(await client.fetchBlob(viaProxy(), layer())));
    expect(e.kind).toBe("deadline_exceeded");
    expect(proxy.requests.filter((r) => r.path.includes("/blobs/"))).toHaveLength(2);
  });

  it("an unreachable registry is unavailable", async () => {
    const port = await freePort();
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`127.0.0.1:${port}/x`)),
    );
    expect(e.kind).toBe("unavailable");
    // The message never says why (refused, no route, destination policy): see destinations.test.ts.
    expect(e.message).toBe(UNREACHABLE);
  });
});

describe("hostile or outdated registries (tiny local server)", () => {
  let server: Server;
  let host: string;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, r) => r.writeHead(404).end();
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    server = createServer((q, r) => handler(q, r));
    server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it("resumes against a server that ignores Range (200 instead of 206)", async () => {
    const blob = Buffer.alloc(3 * 1024 * 1024, 7);
    const digest = sha256Of(blob);
    let calls = 0;
    handler = (_q, r) => {
      calls++;
      r.writeHead(200, { "content-length": String(blob.length) });
      if (calls === 1) {
        r.write(blob.subarray(0, 1024 * 1024), () => setTimeout(() => r.socket?.destroy(), 20));
        return;
      }
      r.end(blob);
    };
    const stream = await new HttpRegistryClient(fast).fetchBlob(parseImageReference(`${host}/x/y`), {
      mediaType: "application/octet-stream",
      digest,
      size: blob.length,
    });
    expect(await drain(stream)).toBe(blob.length);
    expect(calls).toBe(2);
  });

  it("rejects Docker schema1 manifests", async () => {
    const schema1 = JSON.stringify({
      schemaVersion: 1,
      name: "old/app",
      tag: "latest",
      architecture: "amd64",
      fsLayers: [{ blobSum: `sha256:${"a".repeat(64)}` }],
      history: [{ v1Compatibility: "{}" }],
      signatures: [],
    });
    handler = (_q, r) =>
      r
        .writeHead(200, { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" })
        .end(schema1);
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/old/app`)),
    );
    expect(e.kind).toBe("invalid_argument");
    expect(e.message).toMatch(/schema1 manifests are not supported/);
  });

  it("checks the manifest bytes against Docker-Content-Digest", async () => {
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {},
      layers: [],
    });
    handler = (_q, r) =>
      r
        .writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": sha256Of("something else"),
        })
        .end(body);
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/x/y`)),
    );
    expect(e.kind).toBe("data_loss");
    expect(e.message).toMatch(/digest mismatch/);
  });

  it("refuses oversized manifests without reading them whole", async () => {
    handler = (_q, r) => {
      r.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < 64 && r.write(chunk)) sent++;
        if (sent < 64) r.once("drain", pump);
        else r.end();
      };
      pump();
    };
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/x/y`)),
    );
    expect(e.kind).toBe("unprocessable");
    expect(e.message).toMatch(/larger than 4194304 bytes/);
  });

  it("times out a registry that never answers: deadline_exceeded", async () => {
    handler = () => {}; // accept, never respond
    const client = new HttpRegistryClient({
      ...fast,
      requestTimeoutMs: 200,
      retry: { ...fast.retry, attempts: 2 },
    });
    const e = await appErrorOf(client.resolveManifest(parseImageReference(`${host}/x/y`)));
    expect(e.kind).toBe("deadline_exceeded");
    expect(e.message).toMatch(/did not answer/);
  });

  /** A registry that wants a bearer token from its own /token, whose answers `token` picks. */
  const tokenRegistry = (token: (n: number, res: ServerResponse) => void) => {
    let tokenCalls = 0;
    const seen: string[] = [];
    handler = (q, r) => {
      if (q.url?.startsWith("/token")) {
        token(++tokenCalls, r);
        return;
      }
      seen.push(q.headers.authorization ?? "");
      if (q.headers.authorization === "Bearer good-token") {
        r.writeHead(404, { "content-type": "application/json" }).end(
          '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}',
        );
        return;
      }
      r.writeHead(401, { "www-authenticate": `Bearer realm="http://${host}/token",service="t"` }).end();
    };
    return { calls: () => tokenCalls, seen };
  };

  it("retries a token service that fails with 503, then uses its token", async () => {
    const t = tokenRegistry((n, r) =>
      n < 3 ? r.writeHead(503).end() : r.writeHead(200).end('{"token":"good-token"}'),
    );
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/x/y`)),
    );
    // The token was fetched on the third attempt and the manifest asked for with it.
    expect(t.calls()).toBe(3);
    expect(t.seen).toEqual(["", "Bearer good-token"]);
    expect(e.kind).toBe("not_found");
  });

  it("gives up on a token service that keeps failing after the bounded attempts", async () => {
    const t = tokenRegistry((_n, r) => r.writeHead(502).end());
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/x/y`)),
    );
    expect(t.calls()).toBe(4);
    expect(e.kind).toBe("unavailable");
    expect(e.message).toMatch(/token service of registry 127\.0\.0\.1:\d+ failed \(HTTP 502\)/);
  });

  it("does not sit out a token service's long Retry-After", async () => {
    const t = tokenRegistry((_n, r) => r.writeHead(429, { "retry-after": "3600" }).end());
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/x/y`)),
    );
    expect(t.calls()).toBe(1);
    expect(e.message).toMatch(/token service of registry .* is rate limiting us/);
  });

  it("refuses a bearer realm that is not http(s)", async () => {
    handler = (_q, r) =>
      r.writeHead(401, { "www-authenticate": 'Bearer realm="file:///etc/passwd",service="x"' }).end();
    const e = await appErrorOf(
      new HttpRegistryClient(fast).resolveManifest(parseImageReference(`${host}/x/y`)),
    );
    expect(e.message).toMatch(/not http\(s\)/);
  });
});
