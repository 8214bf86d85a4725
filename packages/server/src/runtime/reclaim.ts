/**
 * Start-up reclaim: remove everything a crashed server left behind. Runs before any sandbox
 * starts, so every sandbox recorded under this state dir is an orphan: its `ctr-` container,
 * `/contree/<id>` cgroups, `ctr-<id>` netns, and every mount under the given roots.
 */
import { readFileSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { unmount } from "../sys/overlay-mount.js";
import { removeBindFiles } from "./bind-files.js";
import { SandboxCgroup } from "./cgroups.js";
import { RunscDriver } from "./gvisor/runsc-driver.js";
import { listSandboxNetns, teardownNetns } from "./network.js";
import { CrunDriver } from "./oci/crun-driver.js";
import { OWNER_DIR, ownerMarkerPath } from "./oci/oci-cli-driver.js";
import { RuncDriver } from "./oci/runc-driver.js";
import { NAME_PREFIX } from "./runtime-driver.js";

interface ReclaimOptions {
  /** The drivers' state directory (as given to the drivers). */
  stateDir: string;
  /** Directories under which every mount is ours (run dirs with merged rootfs). */
  mountRoots?: string[];
  /** Also remove sandboxes other state dirs started (every `ctr-` / `/contree/*` on the host). */
  all?: boolean;
}

interface ReclaimReport {
  containers: number;
  cgroups: number;
  netns: number;
  mounts: number;
}

export async function reclaim(o: ReclaimOptions): Promise<ReclaimReport> {
  const report: ReclaimReport = { containers: 0, cgroups: 0, netns: 0, mounts: 0 };

  // Only sandboxes this state dir started (see ownerMarkerPath); `all` sweeps the whole host.
  const owned = await ownedIds(o.stateDir);
  const mine = (id: string) => o.all === true || owned.has(id);
  // Kill first (cgroup-wide, works for every runtime), then let runtimes drop their state.
  const cgIds = SandboxCgroup.listIds().filter(mine);
  for (const id of cgIds)
    await SandboxCgroup.forId(id)
      .kill("SIGKILL")
      .catch(() => undefined);

  // The drivers know their wrappers (crun on hybrid-cgroup hosts) and state roots.
  const drivers = [
    new CrunDriver({ stateDir: o.stateDir }),
    new RuncDriver({ stateDir: o.stateDir }),
    new RunscDriver({ stateDir: o.stateDir, platform: "ptrace" }),
  ];
  for (const d of drivers) {
    for (const id of await d.listContainers()) {
      // A failed delete still leaves the cgroups to us below.
      await d.deleteState(id).catch(() => undefined);
      report.containers++;
    }
  }

  for (const id of cgIds) {
    await SandboxCgroup.forId(id).remove();
    report.cgroups++;
  }

  for (const ns of listSandboxNetns()) {
    if (!mine(ns.slice(NAME_PREFIX.length))) continue;
    await teardownNetns(ns);
    report.netns++;
  }
  for (const id of owned) {
    await removeBindFiles(id);
    await rm(ownerMarkerPath(o.stateDir, id), { force: true });
  }

  for (const target of mountsUnder(o.mountRoots ?? [])) {
    await unmount(target);
    report.mounts++;
  }
  return report;
}

async function ownedIds(stateDir: string): Promise<Set<string>> {
  try {
    return new Set(await readdir(path.join(stateDir, OWNER_DIR)));
  } catch {
    return new Set();
  }
}

/** Mount points below any of `roots`, deepest first. */
export function mountsUnder(roots: string[]): string[] {
  if (roots.length === 0) return [];
  const norm = roots.map((r) => `${path.resolve(r)}/`);
  const targets: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mp = line.split(" ")[4];
    if (mp === undefined) continue;
    // mountinfo escapes spaces etc. as octal.
    const target = mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (norm.some((r) => target.startsWith(r))) targets.push(target);
  }
  return targets.sort((a, b) => b.length - a.length);
}
