// The real server for SDK end-to-end tests: started in this process on a loopback port with the OCI
// runtime (crun, the first OCI driver that works) or gVisor (runsc), busybox imported from the fixture
// registry as `busybox:latest`. Reuses the server's harness.

import { importBusybox } from "../../server/test/harness/busybox-image.js";
import { startTestServer, type TestServer } from "../../server/test/harness/in-process.js";
import type { RegistryHandle } from "../../server/test/harness/registry.js";
import { ContreeClient, type ContreeClientOptions } from "../src/index.js";

export interface LiveServer {
  t: TestServer;
  /** `http://127.0.0.1:PORT` plus the server's path prefix (the SDK appends /v1). */
  url: string;
  token: string;
  /** UUID of the imported busybox image (tagged `busybox:latest`); "" without `busybox`. */
  busybox: string;
  /** A client for this server (or for `url`, e.g. a fault proxy in front of it). */
  client(options?: ContreeClientOptions): ContreeClient;
  close(): Promise<void>;
}

export async function startLiveServer(
  opts: { busybox?: boolean; runtime?: "oci" | "gvisor" } = {},
): Promise<LiveServer> {
  const t = await startTestServer({ runtime: opts.runtime ?? "oci" });
  let registry: RegistryHandle | undefined;
  let busybox = "";
  const close = async () => {
    // A fetch client that cancels a response mid-stream leaves a fresh, never-used connection behind
    // (undici); the server's close then waits for Node's headers timeout (~60-90 s) before it goes.
    // Closing every connection first keeps teardown fast. Reported as a server issue.
    t.server.app.server.closeAllConnections();
    await t.close();
    await registry?.stop();
  };
  try {
    if (opts.busybox ?? true) ({ registry, image: busybox } = await importBusybox(t));
  } catch (e) {
    await close();
    throw e;
  }
  const url = `${t.url}${t.config.pathPrefix}`;
  return {
    t,
    url,
    token: t.token,
    busybox,
    client: (options = {}) =>
      new ContreeClient({ url, token: t.token, env: {}, retry: { initialDelayMs: 20 }, ...options }),
    close,
  };
}
