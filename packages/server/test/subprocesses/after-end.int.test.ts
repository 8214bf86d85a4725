import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

describe("subprocess results after the instance ended", () => {
  let t: TestServer;
  let reg: RegistryHandle;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    ({ registry: reg } = await importBusybox(t));
  }, 300_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  it("GET …/subprocesses/{spid} still answers with the final result", async () => {
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: {
        command: "cat",
        image: "tag:busybox:latest",
        disposable: true,
        stdin: { value: "", encoding: "ascii", close: false },
      },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    let spid = 0;
    for (let i = 0; i < 200 && spid === 0; i++) {
      const s = await t.api(`/v1/operations/${uuid}/subprocesses`, {
        method: "POST",
        json: { command: "echo sub-out; exit 4", shell: true },
      });
      if (s.status === 201) spid = ((await s.json()) as { spid: number }).spid;
      else await new Promise((res) => setTimeout(res, 50));
    }
    expect(spid).toBeGreaterThanOrEqual(2);
    // Let the subprocess finish, then end the main process by closing its stdin.
    for (let i = 0; i < 100; i++) {
      const g = (await (await t.api(`/v1/operations/${uuid}/subprocesses/${spid}`)).json()) as {
        state: { exit_code: number };
      };
      if (g.state.exit_code !== -1) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    await t.api(`/v1/operations/${uuid}/subprocesses/1/stdin`, {
      method: "POST",
      json: { value: "", close: true },
    });
    const op = await waitOperation(t, uuid);
    expect(op["status"]).toBe("SUCCESS");
    const after = await t.api(`/v1/operations/${uuid}/subprocesses/${spid}`);
    expect(after.status).toBe(200);
    const res = (await after.json()) as {
      state: { exit_code: number; signal: number };
      stdout: { value: string };
    };
    expect(res.state).toMatchObject({ exit_code: 4, signal: -1 });
    expect(res.stdout.value).toBe("sub-out\n");
    expect((await t.api(`/v1/operations/${uuid}/subprocesses/99`)).status).toBe(404);
  });
});
