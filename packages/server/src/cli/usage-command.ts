import type { Command } from "commander";
import { PUBLIC_PROJECT } from "../auth/bootstrap.js";
import { loadConfig } from "../config/load-config.js";
import { notFound } from "../core/errors.js";
import { openMetadata } from "../main.js";
import { computeUsage } from "../snapshots/usage.js";
import { fmtBytes } from "../snapshots/usage-tracker.js";
import { usageView } from "../snapshots/usage-view.js";

const out = (s: string) => process.stdout.write(`${s}\n`);
const short = (n: number) => fmtBytes(n).replace(/ \(\d+ bytes\)$/, "");

/**
 * `contree-server usage`: storage per project, computed now from the data dir's metadata (works
 * while the server runs: it only reads rows).
 */
export function registerUsageCommand(program: Command): void {
  program
    .command("usage")
    .description(
      "storage per project: bytes only it holds (exclusive), bytes it shares with other projects, what its quota counts",
    )
    .option("--project <name>", "only this project")
    .option("--json", "print the report as JSON (the shape of GET /v1/admin/usage)")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (opts: { project?: string; json?: boolean; dataDir?: string }) => {
      const config = loadConfig({ dataDir: opts.dataDir });
      const store = openMetadata(config.dataDir);
      try {
        const projects = await store.projects.list();
        const pub = projects.find((p) => p.name === PUBLIC_PROJECT)?.id;
        const view = usageView(
          await computeUsage(store.usage, pub),
          projects,
          config.defaultLimits,
          opts.project,
        );
        if (opts.project !== undefined && view.projects.length === 0)
          throw notFound(`project ${JSON.stringify(opts.project)} not found`);
        if (opts.json) {
          out(JSON.stringify(view, null, 2));
          return;
        }
        out("PROJECT\tIMAGES\tLAYERS\tFILES\tEXCLUSIVE\tSHARED\tCHARGED\tQUOTA");
        for (const p of view.projects)
          out(
            [
              p.project,
              p.images,
              p.layers,
              p.files,
              short(p.exclusive_bytes),
              short(p.shared_bytes),
              short(p.charged_bytes),
              p.storage_max_bytes === null ? "-" : short(p.storage_max_bytes),
            ].join("\t"),
          );
        const t = view.totals;
        out(
          `total: ${t.images} live images, ${t.layers} layers (${short(t.layer_bytes)}; ` +
            `${t.unreferenced_layers} no live image mounts: ${short(t.unreferenced_layer_bytes)}), ` +
            `${t.files} files in ${t.blobs} blobs (${short(t.blob_bytes)}); computed in ${view.duration_ms} ms`,
        );
      } finally {
        await store.close();
      }
    });
}
