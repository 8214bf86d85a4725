import { RunscDriver } from "../../src/runtime/gvisor/runsc-driver.js";
import { registerConformanceSuite } from "../../src/runtime/testsuite.js";

// ptrace: the kvm platform hangs on our nested-PVM machines (lab §3); select.ts probes it.
registerConformanceSuite("runsc", (stateDir) => new RunscDriver({ stateDir, platform: "ptrace" }), {
  guestPidsAreHostTasks: false,
  hogLimitBytes: 256 * 1024 * 1024,
  ownNetworkStack: true,
});
