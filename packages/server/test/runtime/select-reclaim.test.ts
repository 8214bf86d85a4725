import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBusyboxRootfs } from "../../src/runtime/busybox.js";
import { SandboxCgroup } from "../../src/runtime/cgroups.js";
import { listSandboxNetns, removeFirewallIfUnused } from "../../src/runtime/network.js";
import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../src/runtime/oci/runc-driver.js";
import { mountsUnder, reclaim } from "../../src/runtime/reclaim.js";
import { selectDriver } from "../../src/runtime/select.js";
import { mountRootfs } from "../../src/sys/overlay-mount.js";

let root = "";
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "select-reclaim-"));
  // As the server's data dir: searchable by a sandbox's unprivileged host uid (crun in a user
  // namespace), or crun's self-test fails, as it must.
  await chmod(root, 0o711);
});
afterAll(async () => {
  // Both servers' state dirs: a failed assertion must not leave the "other" sandbox behind.
  await reclaim({ stateDir: path.join(root, "state"), mountRoots: [root] }).catch(() => undefined);
  await reclaim({ stateDir: path.join(root, "state-other") }).catch(() => undefined);
  await removeFirewallIfUnused().catch(() => false);
  await rm(root, { recursive: true, force: true });
});

describe("selectDriver", () => {
  it("picks the first passing candidate and reports every one", async () => {
    const stateDir = path.join(root, "state");
    const missing = new RuncDriver({ stateDir, binary: "/nonexistent/runc" });
    const { driver, report } = await selectDriver("oci", {
      stateDir,
      workDir: path.join(root, "work"),
      candidates: [missing, new CrunDriver({ stateDir }), new RuncDriver({ stateDir })],
    });
    expect(driver.name).toBe("crun");
    // Start-up stops probing at the first passing driver.
    expect(report.map((r) => [r.name, r.found, r.selfTest?.ok])).toEqual([
      ["runc", false, undefined],
      ["crun", true, true],
      ["runc", true, undefined],
    ]);
  });

  it("probes every candidate for doctor", async () => {
    const stateDir = path.join(root, "state");
    const { report } = await selectDriver("oci", {
      stateDir,
      workDir: path.join(root, "work"),
      probeAll: true,
      candidates: [new CrunDriver({ stateDir }), new RuncDriver({ stateDir })],
    });
    expect(report.map((r) => [r.name, r.found, r.selfTest?.ok])).toEqual([
      ["crun", true, true],
      ["runc", true, true],
    ]);
  });

  it("fails with a precondition error when nothing works", async () => {
    const stateDir = path.join(root, "state");
    await expect(
      selectDriver("oci", {
        stateDir,
        workDir: path.join(root, "work"),
        candidates: [new RuncDriver({ stateDir, binary: "/nonexistent/runc" })],
      }),
    ).rejects.toMatchObject({ kind: "failed_precondition" });
  });
});

describe("reclaim", () => {
  it("removes containers, cgroups, netns and mounts a crashed server left", async () => {
    const stateDir = path.join(root, "state");
    const base = path.join(root, "layers", "base");
    await buildBusyboxRootfs(base);
    const run = path.join(root, "runs", "1");
    const merged = path.join(run, "merged");
    await mountRootfs({
      lowers: [base],
      upper: path.join(run, "upper"),
      work: path.join(run, "work"),
      target: merged,
    });
    const driver = new RuncDriver({ stateDir });
    const id = `reclaim-${process.pid}`;
    const sb = await driver.start({
      id,
      rootfs: merged,
      bundleDir: path.join(run, "bundle"),
      process: {
        args: ["/bin/sh", "-c", "sleep 1000 & echo up; sleep 1000"],
        env: ["PATH=/bin"],
        cwd: "/",
        uid: 0,
        gid: 0,
      },
      hostname: "x",
      network: "egress",
      limits: { memoryBytes: 128 << 20, pids: 64 },
      stdin: "null",
    });
    // A sandbox of another server (another state dir) must survive our reclaim.
    const otherDriver = new RuncDriver({ stateDir: path.join(root, "state-other") });
    const otherId = `reclaim-other-${process.pid}`;
    const other = await otherDriver.start({
      id: otherId,
      rootfs: base,
      bundleDir: path.join(root, "runs-other", "bundle"),
      process: { args: ["/bin/sleep", "1000"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
      hostname: "y",
      network: "none",
      limits: { memoryBytes: 128 << 20, pids: 64 },
      stdin: "null",
    });
    // Wait until the container really runs before "crashing".
    let out = "";
    sb.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    for (let i = 0; i < 400 && !out.includes("up"); i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain("up");
    expect(SandboxCgroup.listIds()).toContain(id);
    expect(listSandboxNetns()).toContain(`ctr-${id}`);
    // "Crash": the runtime's foreground process dies with the server; the container lives on.
    process.kill(sb.pid, "SIGKILL");
    const st = await sb.wait();
    expect(st.signal).toBe(9);
    await new Promise((r) => setTimeout(r, 200));
    expect((await SandboxCgroup.forId(id).pids()).length).toBeGreaterThan(0);
    const report = await reclaim({ stateDir, mountRoots: [path.join(root, "runs")] });
    expect(report.containers).toBeGreaterThanOrEqual(1);
    expect(report.mounts).toBe(1);
    expect(SandboxCgroup.listIds()).not.toContain(id);
    expect(listSandboxNetns()).not.toContain(`ctr-${id}`);
    expect(mountsUnder([root])).toEqual([]);
    expect(existsSync(path.join(stateDir, "runc", `ctr-${id}`))).toBe(false);
    expect(SandboxCgroup.listIds()).toContain(otherId);
    expect(await Promise.race([other.wait(), new Promise((r) => setTimeout(() => r("running"), 300))])).toBe(
      "running",
    );
    await other.destroy();
    expect(SandboxCgroup.listIds()).not.toContain(otherId);
  });
});
