import type { Command } from "commander";
import { loadConfig } from "../config/load-config.js";
import { createServer } from "../main.js";

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description("start the API server")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .option("--listen <host:port>", "address to listen on (env CONTREE_LISTEN)")
    .option("--runtime <auto|gvisor|oci|crun|runc|runsc>", "sandbox runtime (env CONTREE_RUNTIME)")
    .option("--log-level <level>", "log level (env CONTREE_LOG_LEVEL)")
    .option("--path-prefix <prefix>", "mount prefix before /v1 (env CONTREE_PATH_PREFIX)")
    .action(
      async (opts: {
        dataDir?: string;
        listen?: string;
        runtime?: string;
        logLevel?: string;
        pathPrefix?: string;
      }) => {
        const config = loadConfig(opts);
        const server = await createServer(config);
        // A failed listen (address in use) still releases what start-up set up (scratch mounts).
        const address = await server.app
          .listen({ host: config.host, port: config.port })
          .catch(async (err: unknown) => {
            await server.close().catch(() => undefined);
            throw err;
          });
        const url = `${address}${config.pathPrefix}`;
        if (server.bootstrapToken) {
          const { secret, generated } = server.bootstrapToken;
          process.stdout.write(
            generated
              ? `\nAdmin token for project "default" (shown once, store it now):\n  ${secret}\n\n`
              : `\nAdmin token for project "default" set from CONTREE_BOOTSTRAP_TOKEN.\n\n`,
          );
        }
        process.stdout.write(
          `contree-server listening on ${url}  (API: ${url}/v1, data: ${config.dataDir})\n`,
        );
        server.logger.info({ url, dataDir: config.dataDir }, "listening");
        await new Promise<void>((resolve) => {
          const stop = (signal: string) => {
            server.logger.info({ signal }, "shutting down");
            server.close().then(resolve, (err: unknown) => {
              server.logger.error({ err }, "shutdown failed");
              resolve();
            });
          };
          process.once("SIGTERM", () => stop("SIGTERM"));
          process.once("SIGINT", () => stop("SIGINT"));
        });
      },
    );
}
