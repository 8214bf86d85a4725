import { RuncDriver } from "../../src/runtime/oci/runc-driver.js";
import { registerConformanceSuite } from "../../src/runtime/testsuite.js";

registerConformanceSuite("runc", (stateDir) => new RuncDriver({ stateDir }));
