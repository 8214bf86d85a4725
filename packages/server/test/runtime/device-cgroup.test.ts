/**
 * The device allow-list runsc runs under (it ignores the OCI device rules): a process started
 * through joiningCgroups, by the native cgexec helper or by the `sh` fallback used without the
 * addon, lands in the sandbox's devices cgroup and can open /dev/null but not the host's
 * /dev/kmsg or /dev/mem. Plain cgroup v1 (our hosts) only.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SandboxCgroup } from "../../src/runtime/cgroups.js";
import { joiningCgroups } from "../../src/runtime/oci/oci-cli-driver.js";
import { canJoinCgroupsAtSpawn, launch } from "../../src/sys/proc.js";

const PROBE =
  "grep ':devices:' /proc/self/cgroup; head -c0 /dev/null && echo null-ok; " +
  "head -c1 /dev/kmsg >/dev/null 2>&1 && echo KMSG-OPEN; head -c1 /dev/mem >/dev/null 2>&1 && echo MEM-OPEN; echo done";

describe.each([
  ["cgexec helper", true],
  ["sh fallback", false],
] as const)("devices cgroup join (%s)", (_label, viaHelper) => {
  let cg: SandboxCgroup | null = null;
  afterEach(async () => {
    await cg?.remove();
    cg = null;
  });

  it("confines the process and its children to the allow-list", async () => {
    if (viaHelper) expect(canJoinCgroupsAtSpawn()).toBe(true);
    const id = `devtest-${process.pid}-${viaHelper ? "h" : "s"}`;
    cg = await SandboxCgroup.create(id, { memoryBytes: 64 * 1024 * 1024, pids: 64 }, { deviceRules: true });
    const procs = cg.deviceJoinFiles();
    expect(procs).not.toBeNull();
    const inv = joiningCgroups({ file: "sh", args: ["-c", PROBE] }, procs!, viaHelper);
    const p = launch(inv.file, inv.args, {
      ...(inv.joinCgroups === undefined ? {} : { joinCgroups: inv.joinCgroups }),
      ...(viaHelper ? {} : { backend: "node" as const }),
    });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    p.stderr.resume();
    const st = await p.exited;
    expect(st.code, out).toBe(0);
    expect(out).toMatch(new RegExp(`:devices:/contree/${id}\\n`));
    expect(out).toContain("null-ok");
    expect(out).not.toMatch(/KMSG-OPEN|MEM-OPEN/);
    expect(out).toContain("done");
  });

  it("fails closed when the cgroup cannot be joined", async () => {
    const inv = joiningCgroups(
      { file: "sh", args: ["-c", "echo RAN"] },
      ["/sys/fs/cgroup/devices/contree/does-not-exist/cgroup.procs"],
      viaHelper,
    );
    const p = launch(inv.file, inv.args, {
      ...(inv.joinCgroups === undefined ? {} : { joinCgroups: inv.joinCgroups }),
      ...(viaHelper ? {} : { backend: "node" as const }),
    });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    p.stderr.resume();
    expect((await p.exited).code).toBe(126);
    expect(out).not.toContain("RAN");
  });
});
