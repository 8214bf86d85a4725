/**
 * Runs the real `contree-server` CLI from sources (tests start it with `node --import tsx`), so
 * end-to-end tests exercise argument parsing, start-up, signals and exit codes of the actual
 * process without a build step.
 */
import { main } from "../../src/cli/main.js";

process.exitCode = await main(process.argv);
