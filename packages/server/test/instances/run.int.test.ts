import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

type Doc = Record<string, unknown> & {
  metadata: {
    result: {
      state: { exit_code: number; signal: number; timed_out: boolean };
      stdout: { value: string; encoding: string };
      stderr: { value: string };
    };
  };
  result: { image: string | null };
};

const decode = (s: { value: string; encoding?: string }) =>
  s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

describe("runs", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let base: string;

  beforeAll(async () => {
    t = await startTestServer({
      runtime: (process.env["CONTREE_TEST_RUNTIME"] as "oci" | undefined) ?? "oci",
    });
    ({ registry: reg, image: base } = await importBusybox(t));
  });
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function run(body: Record<string, unknown>): Promise<Doc> {
    const r = await t.api("/v1/instances", { method: "POST", json: body });
    const j = (await r.json()) as { uuid: string; status: string; error?: string };
    expect(r.status, j.error).toBe(202);
    expect(j.status).toBe("PENDING");
    return (await waitOperation(t, j.uuid)) as Doc;
  }

  it("runs a shell command, captures output and snapshots the change as a child image", async () => {
    const op = await run({
      command: "echo hi > /out; echo done; echo err >&2",
      shell: true,
      image: "tag:busybox:latest",
    });
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    expect(op.metadata.result.state.exit_code).toBe(0);
    expect(op.metadata.result.state.signal).toBe(-1);
    expect(decode(op.metadata.result.stdout)).toBe("done\n");
    expect(decode(op.metadata.result.stderr)).toBe("err\n");
    const child = op.result.image;
    expect(child).toBeTruthy();
    expect(child).not.toBe(base);
    expect(op["result_image_uuid"]).toBe(child);

    const again = await run({ command: "cat", args: ["/out"], image: child });
    expect(decode(again.metadata.result.stdout)).toBe("hi\n");
    expect(again.result.image).toBe(child); // nothing changed: the input image
    const fromBase = await run({ command: "cat /out", shell: true, image: base });
    expect(fromBase.metadata.result.state.exit_code).not.toBe(0); // rollback: the base never saw /out
  });

  it("exit codes are results, not failures; disposable runs keep no image", async () => {
    const op = await run({ command: "touch /x; exit 3", shell: true, image: base, disposable: true });
    expect(op["status"]).toBe("SUCCESS");
    expect(op.metadata.result.state.exit_code).toBe(3);
    expect(op.result.image).toBeNull();
  });

  it("timeout kills the sandbox and still snapshots", async () => {
    const op = await run({ command: "echo before > /t; sleep 30", shell: true, image: base, timeout: 1 });
    expect(op["status"]).toBe("SUCCESS");
    expect(op.metadata.result.state).toMatchObject({ timed_out: true, exit_code: -1, signal: 9 });
    expect(op.result.image).toBeTruthy();
  });

  it("rejects bad spawns synchronously", async () => {
    const bad: Array<[Record<string, unknown>, number]> = [
      [{ image: base }, 400],
      [{ command: "true", image: "nope" }, 400],
      [{ command: "true", image: "00000000-0000-4000-8000-000000000000" }, 404],
      [{ command: "true", image: "tag:missing:tag" }, 404],
      [{ command: "true", image: base, cwd: "relative" }, 400],
      [{ command: "true", image: base, timeout: "5" }, 400],
      [
        { command: "true", image: base, files: { "/a": { uuid: "00000000-0000-4000-8000-000000000000" } } },
        404,
      ],
      [
        {
          command: "true",
          image: base,
          files: { "/a": { uuid: "00000000-0000-4000-8000-000000000000", mode: "rwx" } },
        },
        400,
      ],
    ];
    for (const [body, status] of bad) {
      const r = await t.api("/v1/instances", { method: "POST", json: body });
      expect(r.status, JSON.stringify(body)).toBe(status);
    }
  });

  it("injects uploaded files with every mode spelling", async () => {
    const up = await t.api("/v1/files", {
      method: "POST",
      body: "#!/bin/sh\necho script-ran\n",
      headers: { "content-type": "application/octet-stream" },
    });
    const { uuid } = (await up.json()) as { uuid: string };
    const op = await run({
      command: "/opt/a/run.sh; stat -c '%a %u:%g' /opt/a/run.sh /b /c/d /e",
      shell: true,
      image: base,
      files: {
        "/opt/a/run.sh": { uuid, mode: "0755" },
        "/b": { uuid, mode: "0o644", uid: 1000, gid: 1000 },
        "/c/d": { uuid, mode: "0o100600" },
        "/e": { uuid, mode: 0o640 },
      },
    });
    expect(decode(op.metadata.result.stdout)).toBe("script-ran\n755 0:0\n644 1000:1000\n600 0:0\n640 0:0\n");
  });

  it("max_layer_bytes stops a disk filler inside the sandbox and the run records it", async () => {
    const cap = 8 * 1024 * 1024;
    const op = await run({
      command:
        "rm /etc/hostname; dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null; echo dd=$?; ls -l /big | awk '{print $5}'",
      shell: true,
      image: base,
      resources_limits: { max_layer_bytes: cap },
    });
    expect(op["status"]).toBe("SUCCESS");
    const [ddLine, sizeLine] = decode(op.metadata.result.stdout).trim().split("\n");
    expect(ddLine).not.toBe("dd=0"); // the write failed inside the sandbox
    expect(Number(sizeLine)).toBeLessThanOrEqual(cap);
    const events = await (await t.api(`/v1/operations/${String(op["uuid"])}/events`)).text();
    expect(events).toContain("event: size_cap");
    // The capped layer is still a proper layer: the whiteout of /etc/hostname survived the copy.
    const child = op.result.image as string;
    const check = await run({
      command: "test -e /etc/hostname && echo present || echo gone; test -e /big && echo big",
      shell: true,
      image: child,
    });
    expect(decode(check.metadata.result.stdout)).toBe("gone\nbig\n");
  });
});
