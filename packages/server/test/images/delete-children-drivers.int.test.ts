import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant, withoutCrun } from "../harness/tenant.js";

type Op = {
  status: string;
  error: string | null;
  result: { image: string | null };
  metadata: { result: { stdout: { value: string } } };
};

const DRIVERS = [
  { name: "crun", runtime: "oci" },
  { name: "runc", runtime: "oci" },
  { name: "runsc", runtime: "gvisor" },
] as const;

/** Deleting ancestors never breaks a descendant, whatever mounts its chain. */
describe.each(DRIVERS)("children of deleted images ($name)", ({ name, runtime }) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let me: Awaited<ReturnType<typeof tenant>>;

  beforeAll(async () => {
    const start = () => startTestServer({ runtime });
    t = name === "runc" ? await withoutCrun(start) : await start();
    expect(t.server.runtime.name).toBe(name);
    ({ registry: reg } = await importBusybox(t));
    me = await tenant(t);
  }, 180_000);
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function run(image: string, command: string, disposable = false): Promise<Op> {
    const r = await me.api("/v1/instances", {
      method: "POST",
      json: { command, shell: true, image, disposable },
    });
    expect(r.status).toBe(202);
    const op = (await waitOperation(
      (p) => me.api(p),
      ((await r.json()) as { uuid: string }).uuid,
      120_000,
    )) as Op;
    expect(op.status, String(op.error)).toBe("SUCCESS");
    return op;
  }

  it("a grandchild runs and inspects with its parent and grandparent deleted (whiteouts included)", async () => {
    const a = String(
      (await run("tag:busybox:latest", "mkdir /w; echo a > /w/a; echo x > /w/x")).result.image,
    );
    const b = String((await run(a, "echo b > /w/b; rm /w/x")).result.image);
    const c = String((await run(b, "echo c > /w/c")).result.image);
    expect((await me.api(`/v1/images/${b}/tag`, { method: "PATCH", json: { tag: "mid" } })).status).toBe(200);
    expect((await me.api(`/v1/images/${a}`, { method: "DELETE" })).status).toBe(200);
    expect((await me.api(`/v1/images/${b}`, { method: "DELETE" })).status).toBe(409);
    expect((await me.api(`/v1/images/${b}?force=true`, { method: "DELETE" })).status).toBe(200);

    const op = await run(c, "ls /w; cat /w/a /w/b /w/c", true);
    expect(op.metadata.result.stdout.value).toBe("a\nb\nc\na\nb\nc\n");
    const list = (await (await me.api(`/v1/inspect/${c}/list?path=/w`)).json()) as {
      files: { path: string }[];
    };
    expect(list.files.map((f) => f.path).sort()).toEqual(["a", "b", "c"]);
    const dl = await me.api(`/v1/inspect/${c}/download?path=/w/a`);
    expect(await dl.text()).toBe("a\n");
    // And a new child of it commits on top of the chain that still holds the deleted layers.
    const d = String((await run(c, "echo d > /w/d")).result.image);
    expect((await run(d, "cat /w/a /w/d", true)).metadata.result.stdout.value).toBe("a\nd\n");
  }, 300_000);
});
