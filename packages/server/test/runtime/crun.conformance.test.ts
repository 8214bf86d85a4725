import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { registerConformanceSuite } from "../../src/runtime/testsuite.js";

registerConformanceSuite("crun", (stateDir) => new CrunDriver({ stateDir }), {
  userNamespace: true,
  cgroupBlockIo: true,
});
