import { sealedExecutable } from "../../sys/sealed-exec.js";
import { v1DevicesDir } from "../cgroups.js";
import { v1DeviceAllowRules } from "../devices.js";
import type { OciConfig } from "./bundle.js";
import { type Invocation, OciCliDriver, type OciCliDriverOptions } from "./oci-cli-driver.js";

/**
 * A createRuntime hook (run by runc on the host after it set up the container's cgroup, before
 * the container runs) that replaces runc's device rules with ours: runc 1.1 appends its own
 * defaults after the config's rules, and they allow /dev/net/tun (a node made in the writable
 * /dev opened it). Fails closed: a hook that fails stops the start.
 */
const DEVICE_HOOK =
  'd=$0; echo a > "$d/devices.deny" || exit 1; for r; do echo "$r" > "$d/devices.allow" || exit 1; done';

export class RuncDriver extends OciCliDriver {
  readonly name = "runc";
  readonly kind = "oci";
  readonly isolation =
    "Linux namespaces, seccomp, reduced capabilities, cgroups (runc); shares the host kernel";

  constructor(o: OciCliDriverOptions) {
    super("runc", o);
  }

  protected override adjustConfig(config: OciConfig): void {
    const dir = v1DevicesDir(config.linux.cgroupsPath);
    if (dir === null) return; // cgroup v2: runc's eBPF device program, with its own defaults
    const hook = { path: "/bin/sh", args: ["sh", "-c", DEVICE_HOOK, dir, ...v1DeviceAllowRules()] };
    config.hooks = { ...config.hooks, createRuntime: [...(config.hooks?.createRuntime ?? []), hook] };
  }

  protected invocation(sub: string[]): Invocation {
    const args = ["--root", this.stateRoot, ...sub];
    // From a sealed copy, `runc init` does not clone and re-execute the binary (sys/sealed-exec.ts).
    const sealed = sealedExecutable(this.binary);
    return sealed === null ? { file: this.binary, args } : { file: sealed, args, argv0: "runc" };
  }
}
