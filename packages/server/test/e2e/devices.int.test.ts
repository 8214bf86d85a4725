/**
 * Issue 10 §1, as the attacker did it: an ordinary (non-admin) tenant imports an image whose
 * layer holds world-writable nodes of host devices (kmsg, hwrng, kvm, tun, vcs, mem, the host's
 * root disk) at ordinary paths, then runs it on every driver; and makes device nodes inside a
 * run and snapshots them. No host device may be reached, inspect still reports the entries as
 * the devices they name, and no live device node (other than overlay whiteouts) may land in the
 * layer store.
 */
import { execFile } from "node:child_process";
import { lstatSync, readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/tokens.js";
import { major, minor } from "../../src/layers/device.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

const execFileP = promisify(execFile);

const NODES = ["kmsg", "hwrng", "kvm", "tun", "vcs", "mem", "disk"] as const;

type Op = Record<string, unknown> & {
  status: string;
  error?: string;
  metadata?: { result?: { state: { exit_code: number }; stdout: { value: string; encoding?: string } } };
  result?: { image: string | null };
};

const DRIVERS = ["crun", "runc", "runsc"] as const;

/** Char/block nodes under `root` that are not 0/0 whiteouts, relative paths. */
function liveDeviceNodes(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (d.isBlockDevice() || (d.isCharacterDevice() && lstatSync(p).rdev !== 0))
        out.push(p.slice(root.length));
    }
  };
  walk(root);
  return out;
}

const decode = (s: { value: string; encoding?: string }) =>
  s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

describe.each(DRIVERS)("host devices from images and runs (%s)", (name) => {
  let t: TestServer;
  let reg: RegistryHandle;
  let tenant = "";
  let image = "";

  const call = (path: string, init: RequestInit & { json?: unknown } = {}) =>
    t.api(path, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${tenant}` },
    });

  const wait = async (id: string) => (await waitOperation((path) => call(path), id, 120_000)) as Op;

  async function run(command: string, from: string): Promise<{ out: string; image: string | null }> {
    const r = await call("/v1/instances", { method: "POST", json: { command, shell: true, image: from } });
    const j = (await r.json()) as { uuid: string; error?: string };
    expect(r.status, j.error).toBe(202);
    const op = await wait(j.uuid);
    expect(op.status, op.error).toBe("SUCCESS");
    return { out: decode(op.metadata!.result!.stdout), image: op.result?.image ?? null };
  }

  beforeAll(async () => {
    const fx = await fixtures();
    reg = await startRegistry({ seedFrom: fx.registryData });
    t = await startTestServer({ insecureRegistries: [reg.host], runtime: name });
    expect(t.server.runtime.name).toBe(name);
    const project = await t.server.store.projects.create("tenant-devices");
    tenant = (await issueToken(t.server.store, { projectId: project.id, admin: false })).secret;
    const r = await call("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/${FIXTURE_IMAGES.devices}` }, tag: "devices:latest" },
    });
    expect(r.status, await r.clone().text()).toBe(202);
    const op = await wait(((await r.json()) as { uuid: string }).uuid);
    expect(op.status, op.error).toBe("SUCCESS");
    image = String(op["result_image_uuid"]);
  }, 300_000);

  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  it("the layer store holds no live device node after the import", () => {
    expect(liveDeviceNodes(t.dataDir)).toEqual([]);
  });

  it("inspect still reports the entries as the devices they name (list, text, archive)", async () => {
    const l = (await (await call(`/v1/inspect/${image}/list?path=/probe`)).json()) as {
      files: Array<{ path: string; mode: number; is_regular: boolean }>;
    };
    const by = (n: string) => l.files.find((f) => f.path === n)!;
    for (const n of NODES.filter((x) => x !== "disk"))
      expect(by(n)).toMatchObject({ mode: 0o020666, is_regular: false });
    expect(by("disk").mode).toBe(0o060666);
    const text = await (await call(`/v1/inspect/${image}/list?path=/probe&text=1`)).text();
    expect(text).toMatch(/^crw-rw-rw- .* kmsg$/m);
    expect(text).toMatch(/^brw-rw-rw- .* disk$/m);
    const dir = await mkdtemp(join(tmpdir(), "contree-devices-tar-"));
    try {
      const tar = await call(`/v1/inspect/${image}/archive?path=/probe`);
      expect(tar.status).toBe(200);
      await writeFile(join(dir, "a.tar"), Buffer.from(await tar.arrayBuffer()));
      const { stdout } = await execFileP("tar", ["--numeric-owner", "-tvf", join(dir, "a.tar")]);
      expect(stdout).toMatch(/^crw-rw-rw- 0\/0 +1,11 .* probe\/kmsg$/m);
      expect(stdout).toMatch(/^crw-rw-rw- 0\/0 +10,232 .* probe\/kvm$/m);
      expect(stdout).toMatch(/^crw-rw-rw- 0\/0 +7,0 .* probe\/vcs$/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a run cannot read, open or write the host devices the image names", async () => {
    const marker = `contree-e2e-kmsg-${name}-${process.pid}-${Date.now()}`;
    const probe = NODES.map(
      (n) =>
        `f=/probe/${n}; { [ -c $f ] || [ -b $f ]; } && echo DEVICE-${n}; ` +
        `[ "$(head -c16 $f 2>/dev/null | wc -c)" -gt 0 ] && echo READ-${n}; ` +
        `su -s /bin/sh nobody -c "( exec 3<>$f )" 2>/dev/null && echo USER-OPEN-${n}`,
    ).join("; ");
    const r = await run(`${probe}; echo ${marker} > /probe/kmsg 2>/dev/null; echo done`, image);
    expect(r.out).toContain("done");
    // inside the sandbox they are empty, mode-000 regular files, not devices
    expect(r.out).not.toMatch(/DEVICE-|READ-|USER-OPEN-/);
    const dmesg = await execFileP("dmesg", []);
    expect(dmesg.stdout).not.toContain(marker);
  });

  it("device nodes a run makes are snapshotted as stand-ins, reported by inspect, never live", async () => {
    const disk = lstatSync("/").dev;
    const [maj, min] = [major(disk), minor(disk)];
    const made = await run(
      "mknod -m 666 /made-kmsg c 1 11 && echo MADE-kmsg; mkdir -p /deep/er; " +
        "mknod -m 600 /deep/er/vcs c 7 0 && echo MADE-vcs; " +
        `mknod /tmp/made-disk b ${maj} ${min} && echo MADE-disk; rm /bin/cat; echo made`,
      image,
    );
    expect(made.out).toContain("made");
    expect(made.image).toBeTruthy();
    // runc's root is host root with CAP_MKNOD, so the commit path meets real nodes; crun's root
    // is an unprivileged host uid in a user namespace, and gVisor's gofer refuses device nodes
    if (name === "runc") expect(made.out).toMatch(/MADE-kmsg\nMADE-vcs\nMADE-disk/);
    else expect(made.out).not.toContain("MADE-");
    expect(liveDeviceNodes(t.dataDir)).toEqual([]);
    const root = (await (await call(`/v1/inspect/${made.image}/list?path=/`)).json()) as {
      files: Array<{ path: string; mode: number }>;
    };
    if (made.out.includes("MADE-kmsg"))
      expect(root.files.find((f) => f.path === "made-kmsg")?.mode).toBe(0o020666);
    const deep = (await (await call(`/v1/inspect/${made.image}/list?path=/deep/er`)).json()) as {
      files: Array<{ path: string; mode: number }>;
    };
    if (made.out.includes("MADE-vcs")) expect(deep.files.find((f) => f.path === "vcs")?.mode).toBe(0o020600);
    const tmp = (await (await call(`/v1/inspect/${made.image}/list?path=/tmp`)).json()) as {
      files: Array<{ path: string; mode: number }>;
    };
    if (made.out.includes("MADE-disk"))
      expect(tmp.files.find((f) => f.path === "made-disk")?.mode).toBe(0o060644);
    // the whiteout of /bin/cat still hides it
    const bin = (await (await call(`/v1/inspect/${made.image}/list?path=/bin`)).json()) as {
      files: Array<{ path: string }>;
    };
    expect(bin.files.map((f) => f.path)).not.toContain("cat");
    // and a run from the snapshot gets nothing from them
    const marker = `contree-e2e-made-${name}-${process.pid}-${Date.now()}`;
    const again = await run(
      `for f in /made-kmsg /deep/er/vcs /tmp/made-disk; do [ "$(head -c16 $f 2>/dev/null | wc -c)" -gt 0 ] && echo READ-$f; done; ` +
        `echo ${marker} > /made-kmsg 2>/dev/null; echo done`,
      made.image!,
    );
    expect(again.out).toContain("done");
    expect(again.out).not.toMatch(/READ-/);
    expect((await execFileP("dmesg", [])).stdout).not.toContain(marker);
  });
});
