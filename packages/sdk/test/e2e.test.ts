// End-to-end against the real server. Opt-in (CONTREE_SDK_E2E=1) while the server is being written;
// the run tests additionally need an image tagged $CONTREE_IMAGE (default busybox:latest) or a reachable
// registry for the import.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContreeClient } from "../src/client.js";
import { isNotFound, isUnauthorized } from "../src/errors.js";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.js";
import { type RunningServer, startServer } from "./server.js";

const enabled = process.env["CONTREE_SDK_E2E"] === "1";

describe.skipIf(!enabled)("SDK against the real server", () => {
  let server: RunningServer;
  let proxy: FaultProxy;
  let client: ContreeClient;
  beforeAll(async () => {
    server = await startServer();
    proxy = await startFaultProxy(server.url);
    client = new ContreeClient({
      url: proxy.url,
      token: server.token,
      env: {},
      retry: { initialDelayMs: 10 },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  it("whoami, also through injected 503s", async () => {
    proxy.add({ kind: "status", status: 503, retryAfter: "0", times: 2, match: { path: "/v1/whoami" } });
    const me = await client.whoami();
    expect(typeof me.token_uuid).toBe("string");
    expect(proxy.log.filter((e) => e.fault === "status")).toHaveLength(2);
  });

  it("maps 401 and 404", async () => {
    const bad = new ContreeClient({ url: server.url, token: "wrong", env: {}, retry: false });
    expect(isUnauthorized(await bad.whoami().catch((e: unknown) => e))).toBe(true);
    expect(isNotFound(await client.images.get("tag:sdk-e2e/does-not-exist").catch((e: unknown) => e))).toBe(
      true,
    );
  });

  it("files.ensure uploads once and finds the content by hash afterwards", async () => {
    const data = new TextEncoder().encode(`sdk e2e ${Date.now()}`);
    const a = await client.files.ensure(data);
    const b = await client.files.ensure(data);
    expect(b.uuid).toBe(a.uuid);
    expect(await client.files.exists(a.sha256)).toBe(true);
  });

  it("runs, branches and reads back through the inspect API", async () => {
    const ref = process.env["CONTREE_IMAGE"] || "busybox:latest";
    const base = await client.images.get(ref).catch(async (e: unknown) => {
      if (!isNotFound(e)) throw e;
      return (await client.images.import(ref, { tag: ref })).wait();
    });
    proxy.add({ kind: "drop-stream", afterBytes: 300, times: 1, match: { path: /\/events/ } });
    const root = await base.runAndWait("mkdir -p /e2e && echo root > /e2e/f && cat /e2e/f");
    expect(root.exitCode).toBe(0);
    expect(root.stdout).toBe("root\n");
    const [a, b] = await Promise.all([
      root.image!.runAndWait("echo a >> /e2e/f"),
      root.image!.runAndWait("echo b >> /e2e/f"),
    ]);
    expect(await a.image!.read("/e2e/f", { as: "text" })).toBe("root\na\n");
    expect(await b.image!.read("/e2e/f", { as: "text" })).toBe("root\nb\n");
    expect(await root.image!.exists("/e2e/f")).toBe(true);
  });
});
