import type { Command } from "commander";
import { hostReport } from "../observability/host-report.js";

export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("report what this host offers for running sandboxes")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      const report = await hostReport();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      for (const line of report.lines) process.stdout.write(`${line.ok ? "ok  " : "FAIL"}  ${line.name}: ${line.detail}\n`);
    });
}
