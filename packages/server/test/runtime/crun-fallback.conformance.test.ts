/**
 * The same conformance suite for crun with the native addon switched off: fork-based spawns,
 * util-linux mount/umount, crun managing its own cgroups and compiling seccomp itself. Hosts
 * that cannot build the addon get this path, so it must keep every isolation property.
 */
import { expect, it } from "vitest";
import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { registerConformanceSuite } from "../../src/runtime/testsuite.js";
import { nativeSys } from "../../src/sys/native-sys.js";
import { canJoinCgroupsAtSpawn } from "../../src/sys/proc.js";

// Read once, lazily, at the first spawn or mount: set before any of them (this file has its own
// process and module graph).
process.env["CONTREE_NO_NATIVE"] = "1";

it("runs without the native addon", () => {
  expect(nativeSys()).toBeNull();
  expect(canJoinCgroupsAtSpawn()).toBe(false);
});

registerConformanceSuite("crun-nonative", (stateDir) => new CrunDriver({ stateDir }));
