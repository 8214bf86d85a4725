import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../config/load-config.js";
import { type HostReportLine, hostReport } from "../observability/host-report.js";
import { createLogger } from "../observability/logger.js";
import { explainSelection, probeDrivers } from "../runtime/index.js";
import { probeLoop, probeProjectQuota } from "../snapshots/overlay/scratch/select-scratch.js";
import { nativeSysUnavailableReason } from "../sys/native-sys.js";
import { canJoinCgroupsAtSpawn } from "../sys/proc.js";

function nativeLine(): HostReportLine {
  const why = nativeSysUnavailableReason();
  return {
    name: "native addon",
    ok: why === null,
    detail:
      why === null
        ? `loaded: posix_spawn and mount syscalls on the run path; ${
            canJoinCgroupsAtSpawn()
              ? "cgexec helper present (crun starts inside sandbox cgroups on cgroup v1)"
              : "cgexec helper missing (crun manages its own cgroups)"
          }`
        : `${why}; falling back to spawning mount/umount and fork-based spawns (slower runs)`,
  };
}

/**
 * Runs every driver's self-test (a sandbox plus the glibc/coreutils userland probe) in a
 * scratch dir, says why one fails or which workaround it needs, and which driver `auto` gives.
 */
async function driverLines(): Promise<HostReportLine[]> {
  const work = await mkdtemp(join(tmpdir(), "contree-doctor-"));
  // Searchable like a data dir: crun's sandbox runs as an unprivileged host uid (its user
  // namespace) and must reach the self-test's rootfs below this dir.
  await chmod(work, 0o711);
  const lines: HostReportLine[] = [];
  try {
    const { driver, report: reports } = await probeDrivers("auto", {
      stateDir: join(work, "state"),
      workDir: work,
      probeAll: true,
    });
    for (const r of reports) {
      const st = r.selfTest;
      lines.push({
        name: `driver ${r.name} (${r.kind})`,
        ok: r.found && st?.ok === true,
        detail: !r.found
          ? "not installed"
          : st === undefined
            ? `${r.version}; not probed`
            : st.ok
              ? `${r.version}; self-test passed${st.note === undefined ? "" : ` (${st.note})`}; ${r.isolation}`
              : `${r.version}; self-test failed: ${st.reason}`,
      });
    }
    lines.push({
      name: "runtime auto",
      ok: driver !== null,
      detail: explainSelection(reports, driver?.name ?? null),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return lines;
}

/**
 * How `max_layer_bytes` would be enforced for runs in `dataDir` (probed in a scratch dir on the
 * same filesystem: the data dir, or its nearest existing parent).
 */
async function scratchLines(dataDir: string, tmpfsMaxBytes: number): Promise<HostReportLine[]> {
  let base = dataDir;
  while (!existsSync(base) && dirname(base) !== base) base = dirname(base);
  let work: string;
  try {
    work = await mkdtemp(join(base, ".contree-doctor-"));
  } catch (err) {
    // A read-only or full data dir is itself the finding; the rest of the report still prints.
    return [
      {
        name: "run scratch (max_layer_bytes)",
        ok: false,
        detail: `cannot create a probe directory in ${base}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      },
    ];
  }
  try {
    const quota = await probeProjectQuota(work);
    const loop = quota.ok ? undefined : await probeLoop(work, createLogger("silent"));
    const why = quota.ok ? "" : `${quota.detail}; `;
    const lines: HostReportLine[] = [
      {
        name: "run scratch (max_layer_bytes)",
        ok: quota.ok || loop?.ok === true,
        detail: quota.ok
          ? "project quotas: writes past the cap fail inside the sandbox at any size; commit is a rename"
          : loop?.ok
            ? `${why}caps up to ${tmpfsMaxBytes} bytes on a size-capped tmpfs, larger ones (the default 12 GiB included) on a loop-mounted ext4 of the cap's size; commit copies the diff`
            : `${why}${loop?.detail ?? ""}: only caps up to ${tmpfsMaxBytes} bytes are enforced while writing (tmpfs), larger ones are checked after the run; give the data dir a filesystem with project quotas (XFS prjquota) or loop devices`,
      },
    ];
    return lines;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("report what this host offers for running sandboxes, with every driver's self-test")
    .option("--json", "machine-readable output")
    .option("--data-dir <dir>", "data directory whose filesystem is probed for run scratch")
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      const config = loadConfig({ dataDir: opts.dataDir });
      const report = await hostReport();
      const lines = [
        ...report.lines,
        nativeLine(),
        ...(await scratchLines(config.dataDir, config.scratch.tmpfsMaxBytes)),
        ...(await driverLines()),
      ];
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ lines }, null, 2)}\n`);
        return;
      }
      for (const line of lines)
        process.stdout.write(`${line.ok ? "ok  " : "FAIL"}  ${line.name}: ${line.detail}\n`);
    });
}
