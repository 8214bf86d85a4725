import { existsSync } from "node:fs";
import type { Command } from "commander";
import { loadConfig } from "../config/load-config.js";
import { LocalContentStore } from "../content/local/local-content-store.js";
import { invalidArgument, notFound } from "../core/errors.js";
import { dataLayout, openMetadata } from "../main.js";
import { GarbageCollector } from "../snapshots/gc/garbage-collector.js";
import { formatReport } from "../snapshots/gc/gc-report.js";
import { LayerStore } from "../snapshots/layer-store.js";

/**
 * `contree-server gc`: one collection pass on a data dir, also while the server runs there
 * (everything it decides goes through rows, leases and write transactions; a pass running in
 * the server is waited for).
 */
export function registerGcCommand(program: Command): void {
  program
    .command("gc")
    .description(
      "remove deleted images' layers, orphaned dirs and unreferenced blobs (works while the server runs)",
    )
    .option("--dry-run", "only report what would be freed")
    .option("--json", "print the report as JSON")
    .option(
      "--grace <seconds>",
      "leave dirs and blobs without a row younger than this (env CONTREE_GC_GRACE_SECONDS)",
    )
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (opts: { dryRun?: boolean; json?: boolean; grace?: string; dataDir?: string }) => {
      const config = loadConfig({ dataDir: opts.dataDir });
      let graceSeconds = config.gc.graceSeconds;
      if (opts.grace !== undefined) {
        if (!/^\d+$/.test(opts.grace)) throw invalidArgument("--grace must be a number of seconds");
        graceSeconds = Number(opts.grace);
      }
      const layout = dataLayout(config.dataDir);
      // Collecting must not create an empty database where there was none.
      if (!existsSync(layout.database)) throw notFound(`no contree data in ${config.dataDir}`);
      const store = openMetadata(config.dataDir);
      const gc = new GarbageCollector({
        store,
        layers: await LayerStore.open(config.dataDir),
        content: await LocalContentStore.open(layout.content),
        runsDir: layout.runs,
        graceMs: graceSeconds * 1000,
      });
      try {
        const report = await gc.run({ dryRun: opts.dryRun === true });
        process.stdout.write(`${opts.json ? JSON.stringify(report) : formatReport(report)}\n`);
      } finally {
        await gc.close();
        await store.close();
      }
    });
}
