/**
 * gVisor over the same OCI bundle. Notes from the lab (§3) for runsc 20221219:
 *  - `--overlay2=none` explicitly, so writes reach our overlay upper;
 *  - egress uses gVisor's own network stack (`--network=sandbox`): the guest's TCP/IP runs in
 *    the Sentry, not in the host kernel; runsc takes over the veth of our prepared netns (named
 *    in the bundle) through an AF_PACKET socket. This runsc refuses to, because it decides "root
 *    network namespace" by the presence of /proc/sys/net/core/rmem_default, which kernels since
 *    6.x show in every netns (google/gvisor#10704): `runsc run` is started in that netns
 *    (`nsenter --net=`, never `ip netns exec`, which remounts /sys) and in a private mount
 *    namespace where a tmpfs hides /proc/sys/net/core, and nowhere else;
 *  - the kvm platform hangs under nested PVM here; `platform: "auto"` tries it in the
 *    self-test with a short deadline and otherwise uses ptrace.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import type { OciConfig } from "../oci/bundle.js";
import { type Invocation, OciCliDriver, type OciCliDriverOptions } from "../oci/oci-cli-driver.js";
import type { SandboxSpec, SelfTestOptions, SelfTestResult } from "../runtime-driver.js";
import { selfTestSandbox } from "../self-test.js";

export type RunscPlatform = "ptrace" | "kvm" | "auto";

export interface RunscDriverOptions extends OciCliDriverOptions {
  platform?: RunscPlatform;
  /** Deadline for the kvm probe in `auto` mode. */
  kvmProbeMs?: number;
}

export class RunscDriver extends OciCliDriver {
  readonly name = "runsc";
  readonly kind = "gvisor";
  private platform: "ptrace" | "kvm";
  private readonly auto: boolean;
  private readonly kvmProbeMs: number;

  constructor(o: RunscDriverOptions) {
    super("runsc", o);
    this.auto = (o.platform ?? "auto") === "auto";
    this.platform = o.platform === "kvm" ? "kvm" : "ptrace";
    this.kvmProbeMs = o.kvmProbeMs ?? 8000;
  }

  get isolation(): string {
    return `gVisor user-space kernel (platform ${this.platform}); sandboxed code does not call the host kernel directly`;
  }

  get currentPlatform(): "ptrace" | "kvm" {
    return this.platform;
  }

  protected invocation(sub: string[], ctx: { netnsPath?: string }): Invocation {
    if (sub[0] === "--version") return { file: this.binary, args: sub };
    const args = [
      "--root",
      this.stateRoot,
      "--overlay2=none",
      `--network=${ctx.netnsPath === undefined ? "none" : "sandbox"}`,
      `--platform=${this.platform}`,
      ...sub,
    ];
    if (ctx.netnsPath === undefined) return { file: this.binary, args };
    // Every call joins the netns: the sandbox's control socket is an abstract unix socket, which
    // lives in a network namespace. Only `run` sets the network up and needs the hidden sysctl.
    const hide =
      sub[0] === "run"
        ? [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t tmpfs -o size=4k,mode=555 contree-hide /proc/sys/net/core && exec "$@"',
            "sh",
          ]
        : [];
    return { file: "nsenter", args: [`--net=${ctx.netnsPath}`, ...hide, this.binary, ...args] };
  }

  /**
   * runsc mounts a sandbox-private tmpfs over an empty /tmp; writes there would never reach
   * the snapshot. Binding the rootfs's own /tmp keeps them in the overlay like other runtimes.
   */
  protected override adjustConfig(config: OciConfig, spec: SandboxSpec): void {
    if (existsSync(path.join(spec.rootfs, "tmp")) && !config.mounts.some((m) => m.destination === "/tmp")) {
      config.mounts.push({
        destination: "/tmp",
        type: "bind",
        source: path.join(spec.rootfs, "tmp"),
        options: ["rbind", "rw"],
      });
    }
  }

  protected override signalViaRuntime(): boolean {
    return true;
  }

  override async selfTest(o: SelfTestOptions): Promise<SelfTestResult> {
    if (this.auto && existsSync("/dev/kvm")) {
      this.platform = "kvm";
      const kvm = await selfTestSandbox(this, o, this.kvmProbeMs);
      if (kvm.ok) return kvm;
      this.platform = "ptrace";
    }
    return selfTestSandbox(this, o);
  }
}
