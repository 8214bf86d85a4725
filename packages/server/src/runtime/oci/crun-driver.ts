/**
 * crun refuses cgroup-v1 "hybrid" hosts (a cgroup2 mount with controllers next to v1). The
 * workaround hides that mount in a private mount namespace. We detect the mode at construction:
 *  - hybrid: every crun call runs as `unshare -m --propagation private sh -c 'umount <unified>;
 *    mount -t tmpfs … <unified>; exec crun …'` (measured about +10 ms per call);
 *  - a daemon started inside such a namespace (runtime/README.md), plain v1 or pure v2:
 *    crun runs directly, from a sealed in-memory copy (sys/sealed-exec.ts) so that it does not
 *    copy and re-execute itself on every call.
 */

import { readFileSync } from "node:fs";
import path from "node:path";
import { mounter } from "../../sys/mount.js";
import { canJoinCgroupsAtSpawn } from "../../sys/proc.js";
import { runCommand } from "../../sys/run-command.js";
import { sealedExecutable } from "../../sys/sealed-exec.js";
import { cgroupMounts, detectCgroupMode } from "../cgroups.js";
import type { SandboxSpec, SelfTestOptions, SelfTestResult } from "../runtime-driver.js";
import { selfTestSandbox } from "../self-test.js";
import { leaseUserRange, type UserRangeLease } from "../userns.js";
import type { OciConfig } from "./bundle.js";
import { type Invocation, OciCliDriver, type OciCliDriverOptions } from "./oci-cli-driver.js";
import { compileSeccompWithCrun, SECCOMP_BPF_ANNOTATION } from "./seccomp-bpf.js";

interface CrunDriverOptions extends OciCliDriverOptions {
  ownCgroups?: boolean;
  /**
   * Sandboxes in a user namespace over idmapped layers (default: on where the native addon
   * mounts; off with `false` or CONTREE_NO_USERNS=1). The self-test turns it off, with the
   * reason in `isolation`, where the kernel cannot idmap overlay layers.
   */
  userNamespace?: boolean;
}

export class CrunDriver extends OciCliDriver {
  readonly name = "crun";
  readonly kind = "oci";
  /** cgroup2 mount to hide from crun, or null when crun can run as is. */
  readonly hiddenCgroup2: string | null;
  /** Why sandboxes run without a user namespace (null: they run in one). */
  private noUserns: string | null;

  get isolation(): string {
    const base = "Linux namespaces, seccomp, reduced capabilities, cgroups (crun); shares the host kernel";
    return this.noUserns === null
      ? `${base}; user namespace per sandbox (root inside is an unprivileged host uid, idmapped layers)`
      : `${base}; no user namespace (${this.noUserns}): root inside is host root`;
  }

  constructor(o: CrunDriverOptions) {
    super("crun", o);
    this.noUserns =
      o.userNamespace === false || process.env["CONTREE_NO_USERNS"] === "1"
        ? "disabled by configuration"
        : !mounter().idmapsLayers
          ? "idmapped layers need the native addon"
          : null;
    const mounts = cgroupMounts();
    const mode = detectCgroupMode(mounts);
    this.hiddenCgroup2 = mode === "hybrid" ? (mounts.find((m) => m.version === 2)?.dir ?? null) : null;
    this.ownCgroups = mode === "v1" && canJoinCgroupsAtSpawn() && o.ownCgroups !== false;
  }

  /** The compiled seccomp filter, made once (seccomp-bpf.ts); null = keep the JSON profile. */
  private seccompBpf: Promise<string | null> | undefined;

  protected override async prepareConfig(config: OciConfig): Promise<void> {
    const profile = config.linux.seccomp;
    // The wrapped (hybrid) invocation gains nothing worth the extra machinery.
    if (profile === undefined || this.hiddenCgroup2 !== null) return;
    this.seccompBpf ??= compileSeccompWithCrun(profile, {
      stateDir: this.stateDirectory,
      stateRoot: this.stateRoot,
      workDir: path.join(this.stateDirectory, "scratch"),
      run: async (sub) => {
        const inv = this.invocation(sub);
        // A created container keeps crun's stdio: wait for the exit, not for the pipes.
        const r = await runCommand(inv.file, inv.args, {
          untilExit: true,
          timeoutMs: 30_000,
          ...(inv.argv0 === undefined ? {} : { argv0: inv.argv0 }),
        });
        return r.code;
      },
    });
    const bpf = await this.seccompBpf;
    if (bpf === null) return;
    config.annotations = { ...config.annotations, [SECCOMP_BPF_ANNOTATION]: bpf };
  }

  /**
   * On plain v1, with the native helper, crun starts inside the sandbox's cgroups and runs with
   * `--cgroup-manager=disabled` (about 5 ms less per sandbox): limits, accounting and device
   * rules sit on our cgroup (cgroups.ts), which the container inherits when crun forks it.
   */
  private readonly ownCgroups: boolean;

  protected override startsInsideCgroups(): boolean {
    return this.ownCgroups;
  }

  /** Whether sandboxes run in a user namespace. */
  get userNamespace(): boolean {
    return this.noUserns === null;
  }

  userRange(): UserRangeLease | null {
    return this.noUserns === null ? leaseUserRange() : null;
  }

  protected override acceptsUsers(): boolean {
    return this.noUserns === null;
  }

  protected override adjustConfig(config: OciConfig, spec: SandboxSpec): void {
    if (spec.users === undefined) return;
    // sysfs can be mounted only from the user namespace that owns the network namespace, and a
    // prepared netns (egress) belongs to the host. A bind of the host's /sys (crun's fallback)
    // would show host devices and every sandbox's veth: egress sandboxes get an empty tmpfs.
    if (spec.network === "egress") {
      const sys = config.mounts.find((m) => m.destination === "/sys");
      if (sys !== undefined) {
        sys.type = "tmpfs";
        sys.source = "tmpfs";
        sys.options = ["nosuid", "noexec", "nodev", "size=64k", "mode=755"];
      }
    }
  }

  /**
   * The self-test runs a sandbox the way runs will (in a user namespace when that is on); if
   * only that fails, sandboxes run without one and `isolation` says why.
   */
  override async selfTest(o: SelfTestOptions): Promise<SelfTestResult> {
    const r = await selfTestSandbox(this, o);
    // Only a kernel without idmapped overlay layers moves sandboxes to host root; any other
    // failure is the driver's, reported as is.
    if (r.ok || this.noUserns !== null || r.idmapRefused !== true) return r;
    this.noUserns = r.reason;
    const plain = await selfTestSandbox(this, o);
    // The note reaches the start-up log and doctor: root inside is host root from here on.
    return plain.ok ? { ok: true, note: `no user namespace: ${r.reason}` } : plain;
  }

  /**
   * crun reports "running" once it has set the container up, before the container's process has
   * executed its program. Until then that process is still crun: non-dumpable, its memory owned
   * by the host's user namespace. `crun exec` joins a sandbox's user namespace first and then the
   * others through a pidfd, which the kernel checks like a ptrace attach from inside that
   * namespace: it fails ("setns(pid=N, CLONE_*): Operation not permitted", exit 1) and the exec'd
   * command never starts. The window is short and grows with the host's load (CI lost an exec to
   * it). So an exec waits until that process has executed something: while it is crun's own
   * fork, its command line is that of `crun run` (the runtime process).
   */
  override execReady(pid: number, runtimePid: number): boolean {
    const own = commandLine(pid);
    return own !== "" && own !== commandLine(runtimePid);
  }

  protected invocation(sub: string[]): Invocation {
    const global = ["--root", this.stateRoot, ...(this.ownCgroups ? ["--cgroup-manager=disabled"] : [])];
    const args = sub[0] === "--version" ? sub : [...global, ...sub];
    if (this.hiddenCgroup2 === null) {
      const sealed = sealedExecutable(this.binary);
      return sealed === null ? { file: this.binary, args } : { file: sealed, args, argv0: "crun" };
    }
    return {
      file: "unshare",
      args: [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        // crun still writes its processes into a "unified" cgroup path; give it a throw-away
        // tmpfs there, or it litters the host's /sys/fs/cgroup tmpfs under the hidden mount.
        'umount "$0" 2>/dev/null && mount -t tmpfs -o size=256k,mode=755 crun-hide "$0"; exec "$@"',
        this.hiddenCgroup2,
        this.binary,
        ...args,
      ],
    };
  }
}

/** The command line of host process `pid` ("" when it is gone or unreadable). */
function commandLine(pid: number): string {
  if (pid <= 0) return "";
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1");
  } catch {
    return "";
  }
}
