/**
 * max_layer_bytes holds while a run writes, at any size (issue 10 §3): a tenant with an ordinary
 * token asks for a cap and writes past it; the write must fail inside the sandbox, the file stay
 * within the cap, a size_cap event be recorded, and the capped diff still become an image.
 * Before the fix, caps above 1 GiB (the 12 GiB default included) were only checked after the
 * run: a 1.2 GiB cap let a run put 1.3 GB on the host disk.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant, withoutCrun } from "../harness/tenant.js";

type Doc = Record<string, unknown> & {
  metadata: { result: { stdout: { value: string; encoding?: string } } };
  result: { image: string | null };
};
const decode = (s: { value: string; encoding?: string }) =>
  s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

const MiB = 1024 * 1024;
const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

describe.each(DRIVERS)("max_layer_bytes while writing ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let run: (body: Record<string, unknown>) => Promise<Doc>;

  beforeAll(async () => {
    // Every cap on a loop-mounted ext4 (no tmpfs tier): the backend the 12 GiB default uses here.
    const start = () => startTestServer({ runtime }, { CONTREE_SCRATCH_TMPFS_MAX_BYTES: "0" });
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    ({ registry: reg } = await importBusybox(t));
    const attacker = await tenant(t);
    run = async (body) => {
      const r = await attacker.api("/v1/instances", {
        method: "POST",
        json: { image: "tag:busybox:latest", shell: true, ...body },
      });
      const j = (await r.json()) as { uuid: string; error?: string };
      expect(r.status, j.error).toBe(202);
      return (await waitOperation(t, j.uuid, 180_000)) as Doc;
    };
  });
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  it("the server says which scratch backend enforces the cap and why", () => {
    expect(t.server.scratch.enforced, t.server.scratch.reason).toBe(true);
    // This host's data filesystem (ext4 without the project feature) has no project quotas.
    expect(t.server.scratch.backend).toMatch(/project-quota|loop/);
    expect(t.server.scratch.reason).not.toBe("");
  });

  it("a disk filler stops at the cap inside the sandbox; the capped diff is still an image", async () => {
    const cap = 48 * MiB;
    const op = await run({
      command:
        "rm /etc/hostname; dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null; echo dd=$?; ls -l /big | awk '{print $5}'",
      resources_limits: { max_layer_bytes: cap },
    });
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    const [ddLine, sizeLine] = decode(op.metadata.result.stdout).trim().split("\n");
    expect(ddLine).not.toBe("dd=0");
    expect(Number(sizeLine)).toBeGreaterThan(cap / 2);
    expect(Number(sizeLine)).toBeLessThanOrEqual(cap);
    const events = await (await t.api(`/v1/operations/${String(op["uuid"])}/events`)).text();
    expect(events).toContain("event: size_cap");
    const child = op.result.image as string;
    expect(child).toBeTruthy();
    const check = await run({
      command: "test -e /etc/hostname && echo present || echo gone; ls -l /big | awk '{print $5}'",
      image: child,
    });
    expect(decode(check.metadata.result.stdout)).toBe(`gone\n${sizeLine}\n`);
  });

  it("uploaded files that do not fit the cap fail the run with a message about the cap", async () => {
    const attacker = await tenant(t);
    const up = await attacker.api("/v1/files", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: Buffer.alloc(3 * MiB, 7),
    });
    expect(up.status).toBe(201);
    const { uuid } = (await up.json()) as { uuid: string };
    const r = await attacker.api("/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        command: "true",
        files: { "/big": { uuid } },
        resources_limits: { max_layer_bytes: MiB },
      },
    });
    const j = (await r.json()) as { uuid: string };
    const op = await waitOperation(t, j.uuid, 60_000);
    expect(op["status"]).toBe("FAILED");
    expect(op["error"]).toBe(`the run's files do not fit in max_layer_bytes (${MiB})`);
  });

  it("runs under the default cap write and commit as before", async () => {
    const op = await run({ command: "echo hi > /out; mkdir -p /d/e; echo x > /d/e/f" });
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    const again = await run({ command: "cat /out /d/e/f", image: op.result.image });
    expect(decode(again.metadata.result.stdout)).toBe("hi\nx\n");
  });
});

describe("the reported attack: a 1.2 GiB cap (crun, default configuration)", () => {
  let t: TestServer;
  let reg: RegistryHandle;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    ({ registry: reg } = await importBusybox(t));
  });
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  it("writing 1.3 GB fails inside the sandbox at 1.2 GiB", async () => {
    const cap = Math.floor(1.2 * 1024 * MiB);
    const attacker = await tenant(t);
    const r = await attacker.api("/v1/instances", {
      method: "POST",
      json: {
        image: "tag:busybox:latest",
        shell: true,
        // Disposable: no 1.2 GB copy into the layer store, only the write is under test.
        disposable: true,
        command:
          "dd if=/dev/zero of=/big bs=1M count=1300 2>/dev/null; echo dd=$?; ls -l /big | awk '{print $5}'",
        resources_limits: { max_layer_bytes: cap },
      },
    });
    const j = (await r.json()) as { uuid: string };
    const op = (await waitOperation(t, j.uuid, 300_000)) as Doc;
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    const [ddLine, sizeLine] = decode(op.metadata.result.stdout).trim().split("\n");
    expect(ddLine).not.toBe("dd=0");
    expect(Number(sizeLine)).toBeLessThanOrEqual(cap);
    expect(Number(sizeLine)).toBeGreaterThan(cap - 16 * MiB);
    const events = await (await t.api(`/v1/operations/${j.uuid}/events`)).text();
    expect(events).toContain("event: size_cap");
  }, 300_000);
});
