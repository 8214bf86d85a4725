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
 *    self-test with a short deadline and otherwise uses ptrace;
 *  - its kernel rejects AT_NO_AUTOMOUNT in statx: `statxFix: "auto"` turns the workaround of
 *    statx-fix.ts on when the self-test's userland probe fails only there.
 */
import { existsSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import type { Proc } from "../../sys/proc.js";
import { KVM_DEVICE } from "../devices.js";
import type { OciConfig, OciProcess } from "../oci/bundle.js";
import {
  type InitReports,
  type Invocation,
  OciCliDriver,
  type OciCliDriverOptions,
} from "../oci/oci-cli-driver.js";
import type { ProcessSpec, SandboxSpec, SelfTestOptions, SelfTestResult } from "../runtime-driver.js";
import { INIT_IN_SANDBOX, REPORT_DIR_IN_SANDBOX } from "../sandbox-init.js";
import { selfTestSandbox } from "../self-test.js";
import { type DevPoints, mountDevPoints } from "./dev-points.js";
import {
  applyStatxFix,
  STATX_FIX_IN_SANDBOX,
  statxFixArgs,
  statxFixBinary,
  statxFixCovers,
} from "./statx-fix.js";

export type RunscPlatform = "ptrace" | "kvm" | "auto";
/** auto: on when the self-test's userland probe needs it (see statx-fix.ts). */
export type StatxFixMode = "auto" | "on" | "off";

interface RunscDriverOptions extends OciCliDriverOptions {
  platform?: RunscPlatform;
  /** Deadline for the kvm probe in `auto` mode. */
  kvmProbeMs?: number;
  statxFix?: StatxFixMode;
}

export class RunscDriver extends OciCliDriver {
  readonly name = "runsc";
  readonly kind = "gvisor";
  private platform: "ptrace" | "kvm";
  private readonly auto: boolean;
  private readonly kvmProbeMs: number;
  private readonly statxFixMode: StatxFixMode;
  /** The workaround's host binary while it is on. */
  private statxFix: string | null = null;
  /** Sandboxes started with the workaround (their `exec`s get it too). */
  private readonly fixed = new Set<string>();
  /** The /dev mount points (dev-points.ts) of each live sandbox that has them. */
  private readonly devPoints = new Map<string, DevPoints>();

  constructor(o: RunscDriverOptions) {
    super("runsc", o);
    this.auto = (o.platform ?? "auto") === "auto";
    this.platform = o.platform === "kvm" ? "kvm" : "ptrace";
    this.kvmProbeMs = o.kvmProbeMs ?? 8000;
    this.statxFixMode = o.statxFix ?? "auto";
    if (this.statxFixMode === "on") this.statxFix = statxFixBinary();
  }

  /** True while new sandboxes get the statx workaround. */
  get statxFixActive(): boolean {
    return this.statxFix !== null;
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
   * Mount points of the init and the statx workaround and the init's report directory, on a
   * host tmpfs (dev-points.ts). A rootfs whose /dev is not a directory runs without them.
   */
  protected override async prepareRootfs(spec: SandboxSpec): Promise<(() => Promise<void>) | null> {
    const files = [path.basename(INIT_IN_SANDBOX)];
    if (this.statxFix !== null) files.push(path.basename(STATX_FIX_IN_SANDBOX));
    const points = await mountDevPoints(spec.rootfs, files, path.basename(REPORT_DIR_IN_SANDBOX));
    if (points === null) return null;
    this.devPoints.set(spec.id, points);
    if (this.statxFix !== null) this.fixed.add(spec.id);
    return async () => {
      this.fixed.delete(spec.id);
      this.devPoints.delete(spec.id);
      await points.undo();
    };
  }

  /** runsc passes no extra fds: the init writes report files on the sandbox's dev tmpfs. */
  protected override initReports(id: string): InitReports | null {
    const points = this.devPoints.get(id);
    return points === undefined ? null : { kind: "dir", hostDir: points.reportDir };
  }

  override execProcess(id: string, p: ProcessSpec, slot: number, via: InitReports | null): OciProcess {
    const proc = super.execProcess(id, p, slot, via);
    if (this.fixed.has(id)) proc.args = statxFixArgs(proc.args);
    return proc;
  }

  /** The pid inside the sandbox: runsc's exec'd processes have no host pid of their own. */
  protected override execPidFileArgs(pidFile: string): string[] {
    return ["--internal-pid-file", pidFile];
  }

  override async signalExec(
    containerId: string,
    pid: number,
    client: Proc,
    signal: NodeJS.Signals,
    netnsPath?: string,
  ): Promise<void> {
    if (!client.running) return;
    await this.call(["kill", "--pid", String(pid), containerId, signal.replace(/^SIG/, "")], netnsPath);
  }

  /**
   * runsc mounts a sandbox-private tmpfs over an empty /tmp; writes there would never reach
   * the snapshot. Binding the rootfs's own /tmp keeps them in the overlay like other runtimes.
   */
  protected override adjustConfig(config: OciConfig, spec: SandboxSpec): void {
    if (this.statxFix !== null && this.fixed.has(spec.id)) applyStatxFix(config, this.statxFix);
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

  /**
   * runsc keeps `<id>_sandbox:<sandbox id>.state` and `.lock` files, not a directory per
   * container. A sandbox killed before it was fully up (the kvm probe that hangs here) has
   * only the lock; `runsc delete` then refuses it and the file used to stay, one per start.
   */
  private stateFiles(containerId: string): string[] {
    try {
      return readdirSync(this.stateRoot).filter((n) => n.startsWith(`${containerId}_sandbox:`));
    } catch {
      return [];
    }
  }

  override hasState(containerId: string): boolean {
    return this.stateFiles(containerId).length > 0;
  }

  override async listContainers(): Promise<string[]> {
    const names = (await super.listContainers()).map((n) => n.split("_sandbox:")[0] ?? n);
    return [...new Set(names)];
  }

  override async deleteState(containerId: string, netnsPath?: string): Promise<void> {
    const files = this.stateFiles(containerId);
    if (files.some((n) => n.endsWith(".state")))
      await this.call(["delete", "--force", containerId], netnsPath);
    // The ones listed before the delete: it may remove some, rm tolerates that.
    for (const n of files) await rm(path.join(this.stateRoot, n), { force: true });
  }

  protected override signalViaRuntime(): boolean {
    return true;
  }

  /** This release's pty line discipline passes ^C on as a byte (no ISIG): the init signals. */
  protected override terminalSignalsEmulated(): boolean {
    return true;
  }

  override async selfTest(o: SelfTestOptions): Promise<SelfTestResult> {
    let first: SelfTestResult | null = null;
    if (this.auto && existsSync("/dev/kvm")) {
      this.platform = "kvm";
      const kvm = await selfTestSandbox(this, o, this.kvmProbeMs);
      // The sandbox ran (its probe may still fail): the platform works.
      if (kvm.ok || kvm.failedChecks !== undefined) first = kvm;
      else this.platform = "ptrace";
    }
    first ??= await selfTestSandbox(this, o);
    if (first.ok || this.statxFixMode !== "auto" || !statxFixCovers(first.failedChecks ?? [])) return first;
    const binary = statxFixBinary();
    if (binary === null) return { ok: false, reason: `${first.reason} (the statx workaround is not built)` };
    this.statxFix = binary;
    const fixed = await selfTestSandbox(this, o);
    if (fixed.ok)
      return {
        ok: true,
        note: `statx AT_NO_AUTOMOUNT rejected (${first.failedChecks?.join(", ")}) → statx workaround active`,
      };
    this.statxFix = null;
    return { ok: false, reason: `${first.reason}; with the statx workaround: ${fixed.reason}` };
  }
}
