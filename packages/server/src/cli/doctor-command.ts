import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { type HostReportLine, hostReport } from "../observability/host-report.js";
import { explainSelection, probeDrivers } from "../runtime/index.js";
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

export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("report what this host offers for running sandboxes, with every driver's self-test")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      const report = await hostReport();
      const lines = [...report.lines, nativeLine(), ...(await driverLines())];
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ lines }, null, 2)}\n`);
        return;
      }
      for (const line of lines)
        process.stdout.write(`${line.ok ? "ok  " : "FAIL"}  ${line.name}: ${line.detail}\n`);
    });
}
