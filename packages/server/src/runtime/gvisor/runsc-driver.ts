/**
 * gVisor over the same OCI bundle. Notes from the lab (§3) for runsc 20221219:
 *  - `--overlay2=none` explicitly, so writes reach our overlay upper;
 *  - netstack networking is broken on recent kernels, so egress joins our prepared netns with
 *    `nsenter --net=` and `--network=host` (never `ip netns exec`, which remounts /sys);
 *  - the kvm platform hangs under nested PVM here; `platform: "auto"` tries it in the
 *    self-test with a short deadline and otherwise uses ptrace.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { KVM_DEVICE } from "../devices.js";
import type { EgressNetwork } from "../network.js";
import type { BundleOptions, OciConfig } from "../oci/bundle.js";
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
      `--network=${ctx.netnsPath === undefined ? "none" : "host"}`,
      `--platform=${this.platform}`,
      ...sub,
    ];
    if (ctx.netnsPath === undefined) return { file: this.binary, args };
    return { file: "nsenter", args: [`--net=${ctx.netnsPath}`, this.binary, ...args] };
  }

  protected override bundleOptions(base: BundleOptions, net: EgressNetwork | null): BundleOptions {
    return net === null ? base : { ...base, netnsPath: null };
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
        options: ["rbind", "rw", "nodev", "nosuid"],
      });
    }
  }

  /**
   * runsc (this release) applies no OCI device rules: its sandbox and gofer would otherwise run in
   * the server's own devices cgroup, which allows every device (a node in an image opened the
   * host's /dev/kmsg). They start under our allow-list instead; the sentry needs /dev/kvm only
   * on the kvm platform.
   */
  protected override confinedToDeviceCgroup(): boolean {
    return true;
  }

  protected override runtimeDevices(): ReadonlyArray<readonly [number, number]> {
    return this.platform === "kvm" ? [KVM_DEVICE] : [];
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
