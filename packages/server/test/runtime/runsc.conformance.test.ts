import { RunscDriver } from "../../src/runtime/gvisor/runsc-driver.js";
import { registerConformanceSuite } from "../../src/runtime/testsuite.js";

// ptrace: the kvm platform hangs on our nested-PVM machines (lab §3); select.ts probes it.
// statxFix "on": every behaviour is checked through the workaround's entry point, which is what
// the server runs on hosts whose runsc rejects AT_NO_AUTOMOUNT (it changes nothing elsewhere).
registerConformanceSuite(
  "runsc",
  (stateDir) => new RunscDriver({ stateDir, platform: "ptrace", statxFix: "on" }),
  {
    guestPidsAreHostTasks: false,
    hogLimitBytes: 256 * 1024 * 1024,
    ownNetworkStack: true,
    fullRusage: false,
  },
);
