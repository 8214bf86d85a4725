/** The runtime subsystem's public surface (what main.ts, cli/ and runtime/README.md use). */

export { reclaim } from "./reclaim.js";
export * from "./runtime-driver.js";
export { explainSelection, probeDrivers, selectDriver } from "./select.js";
