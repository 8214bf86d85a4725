import { sealedExecutable } from "../../sys/sealed-exec.js";
import { type Invocation, OciCliDriver, type OciCliDriverOptions } from "./oci-cli-driver.js";

export class RuncDriver extends OciCliDriver {
  readonly name = "runc";
  readonly kind = "oci";
  readonly isolation =
    "Linux namespaces, seccomp, reduced capabilities, cgroups (runc); shares the host kernel";

  constructor(o: OciCliDriverOptions) {
    super("runc", o);
  }

  protected invocation(sub: string[]): Invocation {
    const args = ["--root", this.stateRoot, ...sub];
    // From a sealed copy, `runc init` does not clone and re-execute the binary (sys/sealed-exec.ts).
    const sealed = sealedExecutable(this.binary);
    return sealed === null ? { file: this.binary, args } : { file: sealed, args, argv0: "runc" };
  }
}
