/** The runtime subsystem's public surface. */

export { buildBusyboxRootfs } from "./busybox.js";
export { type CgroupMode, detectCgroupMode } from "./cgroups.js";
export { RunscDriver, type RunscPlatform } from "./gvisor/runsc-driver.js";
export { defaultEgressConfig, type EgressConfig, ensureFirewall, removeFirewallIfUnused } from "./network.js";
export { CrunDriver } from "./oci/crun-driver.js";
export { RuncDriver } from "./oci/runc-driver.js";
export { type ReclaimOptions, type ReclaimReport, reclaim } from "./reclaim.js";
export {
  type DiffStats,
  diffStats,
  MAX_LOWERS,
  type MountRootfsOptions,
  mountRootfs,
  unmount,
} from "./rootfs.js";
export * from "./runtime-driver.js";
export {
  candidateDrivers,
  type DriverPreference,
  type DriverReport,
  explainSelection,
  probeDrivers,
  type SelectOptions,
  selectDriver,
} from "./select.js";
