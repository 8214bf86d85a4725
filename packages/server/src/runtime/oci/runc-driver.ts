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
    return { file: this.binary, args: ["--root", this.stateRoot, ...sub] };
  }
}
