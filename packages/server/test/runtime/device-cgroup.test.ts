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
  "grep ':devices:' /proc/self/cgroup; ( exec 3</dev/null ) && echo null-ok; " +
  "( exec 3</dev/kmsg ) 2>/dev/null && echo KMSG-OPEN; echo done";

async function output(p: ReturnType<typeof launch>): Promise<{ code: number | null; out: string }> {
  let out = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  p.stderr.resume();
  const ended = new Promise((r) => p.stdout.once("close", r));
  const { code } = await p.exited;
  await ended; // the exit can be reported before the pipe is drained
  return { code, out };
}

it("the probe is not vacuous: outside the sandbox's cgroup the host's /dev/kmsg opens", async () => {
  const r = await output(launch("sh", ["-c", PROBE]));
  expect(r.out).toContain("KMSG-OPEN");
});

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
    const { code, out } = await output(p);
    expect(code, out).toBe(0);
    expect(out).toMatch(new RegExp(`:devices:/contree/${id}\\n`));
    expect(out).toContain("null-ok");
    expect(out).not.toContain("KMSG-OPEN");
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
    const { code, out } = await output(p);
    expect(code).toBe(126);
    expect(out).not.toContain("RAN");
  });
});
