import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { type HostReportLine, hostReport } from "../observability/host-report.js";
import { candidateDrivers } from "../runtime/index.js";
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

/** Runs every driver's self-test in a scratch dir and says why one fails. */
async function driverLines(): Promise<HostReportLine[]> {
  const work = await mkdtemp(join(tmpdir(), "contree-doctor-"));
  const lines: HostReportLine[] = [];
  try {
    let chosen: string | undefined;
    for (const d of candidateDrivers("auto", { stateDir: join(work, "state"), workDir: work })) {
      let version: string;
      try {
        version = await d.version();
      } catch {
        lines.push({ name: `driver ${d.name}`, ok: false, detail: "not installed" });
        continue;
      }
      const r = await d.selfTest({ workDir: work });
      if (r.ok && chosen === undefined) chosen = d.name;
      lines.push({
        name: `driver ${d.name} (${d.kind})`,
        ok: r.ok,
        detail: r.ok
          ? `${version}; self-test passed; ${d.isolation}`
          : `${version}; self-test failed: ${r.reason}`,
      });
    }
    lines.push({
      name: "runtime auto",
      ok: chosen !== undefined,
      detail: chosen ? `would use ${chosen}` : "no driver passes its self-test",
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
