/**
 * crun compiles the OCI seccomp section with libseccomp on every start (about 4 ms here). It
 * also accepts the compiled filter as the `run.oci.seccomp_bpf_data` annotation (base64 of the
 * raw BPF program it would load). We let crun compile our fixed profile once, by creating a
 * throw-away container and reading the `seccomp.bpf` it leaves in its state directory, and
 * reuse that filter: the same bytes crun itself would load for that profile.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { HOST_BUSYBOX } from "../busybox.js";
import { SandboxCgroup } from "../cgroups.js";
import { NAME_PREFIX } from "../runtime-driver.js";
import { type OciConfig, ociConfig } from "./bundle.js";
import { ownerMarkerPath } from "./oci-cli-driver.js";
import type { OciSeccomp } from "./seccomp.js";

export const SECCOMP_BPF_ANNOTATION = "run.oci.seccomp_bpf_data";

interface CrunCalls {
  /** The driver's state dir (owner markers, for reclaim after a crash). */
  stateDir: string;
  /** Runtime state root (`--root`). */
  stateRoot: string;
  /** Scratch space for the throw-away bundle. */
  workDir: string;
  /** Runs `<crun> <sub…>` (global flags included) until it exits; resolves with its exit code. */
  run(sub: string[]): Promise<number>;
}

/** The compiled filter as base64, or null when it cannot be made (callers keep the JSON profile). */
export async function compileSeccompWithCrun(profile: OciSeccomp, crun: CrunCalls): Promise<string | null> {
  if (!existsSync(HOST_BUSYBOX)) return null;
  await mkdir(crun.workDir, { recursive: true });
  const dir = await mkdtemp(path.join(crun.workDir, "seccomp-"));
  const suffix = randomBytes(4).toString("hex");
  const id = `seccomp-${suffix}`;
  const containerId = `${NAME_PREFIX}${id}`;
  let cg: SandboxCgroup | null = null;
  let created = false;
  try {
    const rootfs = path.join(dir, "rootfs");
    await mkdir(path.join(rootfs, "bin"), { recursive: true });
    await copyFile(HOST_BUSYBOX, path.join(rootfs, "bin", "true"));
    await chmod(path.join(rootfs, "bin", "true"), 0o755);
    cg = await SandboxCgroup.create(id, { memoryBytes: 64 * 1024 * 1024, pids: 16 });
    const config: OciConfig = ociConfig(
      {
        id,
        rootfs,
        bundleDir: dir,
        process: { args: ["/bin/true"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
        hostname: "seccomp",
        network: "none",
        limits: { memoryBytes: 64 * 1024 * 1024, pids: 16 },
        stdin: "null",
      },
      { cgroupsPath: cg.ociPath },
    );
    config.linux.seccomp = profile;
    await writeFile(path.join(dir, "config.json"), JSON.stringify(config), { mode: 0o600 });
    // Owned like any sandbox: a crash right here is reclaimed at the next start.
    await mkdir(path.dirname(ownerMarkerPath(crun.stateDir, id)), { recursive: true });
    await writeFile(ownerMarkerPath(crun.stateDir, id), "");
    created = true;
    if ((await crun.run(["create", "--bundle", dir, containerId])) !== 0) return null;
    const bpf = await readFile(path.join(crun.stateRoot, containerId, "seccomp.bpf")).catch(() => null);
    // A BPF program is a whole number of 8-byte instructions; anything else is not what we want.
    if (bpf === null || bpf.length === 0 || bpf.length % 8 !== 0) return null;
    return bpf.toString("base64");
  } catch {
    return null;
  } finally {
    if (created) await crun.run(["delete", "--force", containerId]).catch(() => undefined);
    await cg?.remove().catch(() => undefined);
    await rm(ownerMarkerPath(crun.stateDir, id), { force: true });
    await rm(dir, { recursive: true, force: true });
  }
}
