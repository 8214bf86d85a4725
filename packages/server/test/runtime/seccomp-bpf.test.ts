/** crun compiles our seccomp profile once; the filter is reused through its annotation. */
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { SandboxCgroup } from "../../src/runtime/cgroups.js";
import { BLOCKED_SYSCALLS, seccompProfile } from "../../src/runtime/oci/seccomp.js";
import { compileSeccompWithCrun } from "../../src/runtime/oci/seccomp-bpf.js";
import { runCommand } from "../../src/sys/run-command.js";
import { sealedExecutable } from "../../src/sys/sealed-exec.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "seccomp-bpf-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function calls(stateDir: string) {
  const stateRoot = path.join(stateDir, "crun");
  const bin = sealedExecutable("crun");
  return {
    stateDir,
    stateRoot,
    workDir: path.join(stateDir, "scratch"),
    run: async (sub: string[]) =>
      (
        await runCommand(bin ?? "crun", ["--root", stateRoot, ...sub], {
          untilExit: true,
          ...(bin === null ? {} : { argv0: "crun" }),
        })
      ).code,
  };
}

it("compiles the profile into a BPF program and leaves nothing behind", async () => {
  const c = calls(dir);
  const bpf = await compileSeccompWithCrun(seccompProfile(), c);
  expect(bpf).not.toBeNull();
  const prog = Buffer.from(bpf as string, "base64");
  // Whole 8-byte instructions, at least one per blocked syscall.
  expect(prog.length % 8).toBe(0);
  expect(prog.length / 8).toBeGreaterThan(BLOCKED_SYSCALLS.length);
  // A bigger profile compiles to a bigger program: it is this profile's filter.
  const more = seccompProfile();
  more.syscalls.push({ names: ["chroot", "sethostname"], action: "SCMP_ACT_ERRNO", errnoRet: 1 });
  const bigger = Buffer.from((await compileSeccompWithCrun(more, c)) as string, "base64");
  expect(bigger.length).toBeGreaterThan(prog.length);
  expect(readdirSync(c.stateRoot)).toEqual([]);
  expect(existsSync(c.workDir) ? readdirSync(c.workDir) : []).toEqual([]);
  expect(readdirSync(path.join(dir, "sandboxes"))).toEqual([]);
  expect(SandboxCgroup.listIds().filter((id) => id.startsWith("seccomp-"))).toEqual([]);
});

it("gives null (callers keep the JSON profile) when crun refuses", async () => {
  const c = { ...calls(dir), run: async () => 1 };
  expect(await compileSeccompWithCrun(seccompProfile(), c)).toBeNull();
});
