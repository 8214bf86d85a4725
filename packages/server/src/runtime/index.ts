/** The runtime subsystem's public surface. */
export * from "./runtime-driver.js";
export { mountRootfs, unmount, diffStats, MAX_LOWERS, type MountRootfsOptions, type DiffStats } from "./rootfs.js";
export { selectDriver, candidateDrivers, type DriverPreference, type DriverReport, type SelectOptions } from "./select.js";
export { reclaim, type ReclaimOptions, type ReclaimReport } from "./reclaim.js";
export { detectCgroupMode, type CgroupMode } from "./cgroups.js";
export { ensureFirewall, removeFirewallIfUnused, defaultEgressConfig, type EgressConfig } from "./network.js";
export { buildBusyboxRootfs } from "./busybox.js";
export { CrunDriver } from "./oci/crun-driver.js";
export { RuncDriver } from "./oci/runc-driver.js";
export { RunscDriver, type RunscPlatform } from "./gvisor/runsc-driver.js";
