/**
 * The character devices a Linux userland needs inside a sandbox; everything else (block
 * devices, kvm, …) is denied. One list for the OCI config (runtimes that manage cgroups) and
 * for the v1 devices cgroup we write ourselves (crun started inside our cgroups).
 */
export const ALLOWED_CHAR_DEVICES: ReadonlyArray<readonly [major: number, minor: number | undefined]> = [
  [1, 3], // null
  [1, 5], // zero
  [1, 7], // full
  [1, 8], // random
  [1, 9], // urandom
  [5, 0], // tty
  [5, 2], // ptmx
  [136, undefined], // pts/*
];

/** /dev/kvm: only for gVisor's own sentry on its kvm platform, never for a container. */
export const KVM_DEVICE: readonly [number, number] = [10, 232];

/**
 * cgroup v1 `devices.allow` lines: the list above (plus `extra` char devices the runtime itself
 * needs on the host), plus mknod (not open) of anything: a node made that way stays unopenable,
 * and the rootfs is mounted nodev.
 */
export function v1DeviceAllowRules(
  extra: ReadonlyArray<readonly [major: number, minor: number]> = [],
): string[] {
  const rules = [...ALLOWED_CHAR_DEVICES, ...extra].map(([major, minor]) => `c ${major}:${minor ?? "*"} rwm`);
  return [...rules, "c *:* m", "b *:* m"];
}
