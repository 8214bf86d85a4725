import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBusyboxRootfs } from "../../src/runtime/busybox.js";
import { RunscDriver } from "../../src/runtime/gvisor/runsc-driver.js";
import type { OciConfig } from "../../src/runtime/oci/bundle.js";
import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../src/runtime/oci/runc-driver.js";
import { reclaim } from "../../src/runtime/reclaim.js";
import { explainSelection, selectDriver } from "../../src/runtime/select.js";

const EINVAL = 22;
const AT_NO_AUTOMOUNT = 0x800;

/**
 * crun whose sandboxes answer statx(…, AT_NO_AUTOMOUNT, …) with EINVAL, as runsc 20221219's
 * kernel does: a real sandbox with a real failing call, made on demand with seccomp.
 */
class CrunWithOldStatx extends CrunDriver {
  protected override adjustConfig(config: OciConfig): void {
    config.linux.seccomp?.syscalls.push({
      names: ["statx"],
      action: "SCMP_ACT_ERRNO",
      errnoRet: EINVAL,
      args: [{ index: 2, value: AT_NO_AUTOMOUNT, valueTwo: AT_NO_AUTOMOUNT, op: "SCMP_CMP_MASKED_EQ" }],
    });
  }
}

let root = "";
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "select-userland-"));
  // Like the server's data dir: crun's sandbox uid (user namespace) must reach the self-test's rootfs.
  await chmod(root, 0o711);
});
afterAll(async () => {
  await reclaim({ stateDir: path.join(root, "state"), mountRoots: [root] }).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe("auto-selection and the userland probe", () => {
  it("never picks a driver on which glibc's statx flags fail, and says why", async () => {
    const stateDir = path.join(root, "state");
    const { driver, report } = await selectDriver("auto", {
      stateDir,
      workDir: path.join(root, "work"),
      candidates: [new CrunWithOldStatx({ stateDir }), new RuncDriver({ stateDir })],
    });
    expect(driver.name).toBe("runc");
    const st = report[0]?.selfTest;
    expect(st?.ok).toBe(false);
    expect(st && !st.ok && st.failedChecks).toEqual(["statx-noautomount", "statx-empty-path"]);
    expect(explainSelection(report, driver.name)).toBe(
      "crun rejected: glibc/coreutils userland would fail: statx-noautomount EINVAL, statx-empty-path EINVAL" +
        "; runc: self-test passed → runc",
    );
  });

  it("fails start-up when the only driver fails the probe", async () => {
    const stateDir = path.join(root, "state");
    await expect(
      selectDriver("crun", {
        stateDir,
        workDir: path.join(root, "work"),
        candidates: [new CrunWithOldStatx({ stateDir })],
      }),
    ).rejects.toMatchObject({
      kind: "failed_precondition",
      message: expect.stringContaining("statx-noautomount"),
    });
  });

  // Debian's runsc 20221219 (the one these machines have) rejects AT_NO_AUTOMOUNT.
  it("rejects runsc without the statx workaround, picks it with the workaround", async () => {
    const stateDir = path.join(root, "state");
    const off = await selectDriver("auto", {
      stateDir,
      workDir: path.join(root, "work"),
      candidates: [
        new RunscDriver({ stateDir, platform: "ptrace", statxFix: "off" }),
        new CrunDriver({ stateDir }),
      ],
    });
    expect(off.driver.name).toBe("crun");
    expect(explainSelection(off.report, "crun")).toMatch(
      /^runsc rejected: glibc\/coreutils userland would fail: statx-noautomount EINVAL, .*→ crun$/,
    );

    const runsc = new RunscDriver({ stateDir, platform: "ptrace" });
    const auto = await selectDriver("auto", {
      stateDir,
      workDir: path.join(root, "work"),
      candidates: [runsc, new CrunDriver({ stateDir })],
    });
    expect(auto.driver).toBe(runsc);
    expect(runsc.statxFixActive).toBe(true);
    expect(explainSelection(auto.report, "runsc")).toMatch(
      /^runsc: statx AT_NO_AUTOMOUNT rejected \(statx-noautomount, .*\) → statx workaround active → runsc$/,
    );
  });
});

describe("runsc state files", () => {
  const runscFiles = (stateDir: string) => {
    const dir = path.join(stateDir, "runsc");
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  it("repeated start-ups leave no lock files (the kvm probe that hangs here included)", async () => {
    const stateDir = path.join(root, "state-starts");
    for (let i = 0; i < 2; i++) {
      // auto: on hosts with /dev/kvm the kvm probe runs first and, on our nested machines, is
      // killed at its deadline while runsc is still starting: the case that left a lock file.
      await selectDriver("gvisor", {
        stateDir,
        workDir: path.join(root, "work"),
        candidates: [new RunscDriver({ stateDir, platform: "auto", kvmProbeMs: 2000 })],
      });
      expect(runscFiles(stateDir)).toEqual([]);
    }
  });

  it("a sandbox destroyed while it starts leaves no state", async () => {
    const stateDir = path.join(root, "state-kill");
    const rootfs = path.join(root, "busybox");
    await buildBusyboxRootfs(rootfs);
    const driver = new RunscDriver({ stateDir, platform: "ptrace" });
    const sb = await driver.start({
      id: `kill-early-${process.pid}`,
      rootfs,
      bundleDir: path.join(root, "bundle-kill"),
      process: { args: ["/bin/sleep", "100"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
      hostname: "x",
      network: "none",
      limits: { memoryBytes: 256 << 20, pids: 64 },
      stdin: "null",
    });
    await sb.destroy();
    expect(runscFiles(stateDir)).toEqual([]);
  });

  it("start-up reclaim removes lock files earlier versions left", async () => {
    const stateDir = path.join(root, "state-old");
    mkdirSync(path.join(stateDir, "runsc"), { recursive: true });
    const old = "ctr-selftest-runsc-1-abc";
    writeFileSync(path.join(stateDir, "runsc", `${old}_sandbox:${old}.lock`), "");
    const report = await reclaim({ stateDir });
    expect(report.containers).toBe(1);
    expect(runscFiles(stateDir)).toEqual([]);
  });
});
