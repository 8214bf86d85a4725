import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { loadConfig } from "../config/load-config.js";
import { invalidArgument } from "../core/errors.js";
import { isoMicros } from "../core/time.js";
import { openMetadata, openSecrets } from "../main.js";
import type { SecretService } from "../secrets/secret-service.js";
import { SECRET_MAX_BYTES, trimFinalNewline } from "../secrets/secret-service.js";

const out = (s: string) => process.stdout.write(`${s}\n`);
const collect = (v: string, all: string[]) => [...all, v];

/** Works on the data dir like the other admin commands (SQLite allows a running server beside it). */
async function withSecrets<T>(
  dataDir: string | undefined,
  fn: (s: SecretService, projectId: (name: string) => Promise<string>) => Promise<T>,
): Promise<T> {
  const config = loadConfig({ dataDir });
  const store = openMetadata(config.dataDir);
  try {
    return await fn(openSecrets(config, store), async (name) => (await store.projects.resolve(name)).id);
  } finally {
    await store.close();
  }
}

/** The value from a file or stdin (never argv: it would show in `ps` and shell history), bounded. */
async function readValue(file: string | undefined): Promise<Buffer> {
  if (file !== undefined) {
    const data = await readFile(file);
    if (data.length > SECRET_MAX_BYTES + 2)
      throw invalidArgument(`the value is over ${SECRET_MAX_BYTES} bytes`);
    return trimFinalNewline(data);
  }
  if (process.stdin.isTTY) process.stderr.write("value (end with Ctrl-D): ");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > SECRET_MAX_BYTES + 2) throw invalidArgument(`the value is over ${SECRET_MAX_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return trimFinalNewline(Buffer.concat(chunks));
}

interface SetOptions {
  project: string;
  fromFile?: string;
  host: string[];
  /** Commander's `--no-env`: false when given. */
  env: boolean;
  dataDir?: string;
}

export function registerSecretCommands(program: Command): void {
  const secret = program
    .command("secret")
    .description("manage project secrets (values are read from stdin or a file and never shown)");
  secret
    .command("set <name>")
    .requiredOption("--project <name>", "project the secret belongs to")
    .option(
      "--from-file <path>",
      "read the value from this file (default: stdin); one final newline is dropped",
    )
    .option("--host <host>", "a host (or *.domain) header mode may send it to (repeatable)", collect, [])
    .option("--no-env", "never give a run the value itself (header mode only)")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (name: string, opts: SetOptions) => {
      const value = await readValue(opts.fromFile);
      try {
        await withSecrets(opts.dataDir, async (s, projectId) => {
          const policy = { hosts: opts.host, allowEnv: opts.env };
          const created = await s.set(await projectId(opts.project), name, value, policy);
          out(`${created ? "created" : "replaced"} ${name} (${value.length} bytes)`);
        });
      } finally {
        value.fill(0);
      }
    });
  secret
    .command("list")
    .requiredOption("--project <name>", "project whose secrets to list")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (opts: { project: string; dataDir?: string }) => {
      await withSecrets(opts.dataDir, async (s, projectId) => {
        out("NAME\tBYTES\tENV\tHOSTS\tCREATED\tUPDATED\tLAST_USED");
        for (const x of await s.list(await projectId(opts.project)))
          out(
            [
              x.name,
              x.size,
              x.allowEnv ? "yes" : "no",
              x.hosts.join(",") || "-",
              isoMicros(x.createdAt),
              isoMicros(x.updatedAt),
              x.lastUsedAt === null ? "-" : isoMicros(x.lastUsedAt),
            ].join("\t"),
          );
      });
    });
  secret
    .command("delete <name>")
    .requiredOption("--project <name>", "project the secret belongs to")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (name: string, opts: { project: string; dataDir?: string }) => {
      await withSecrets(opts.dataDir, async (s, projectId) => {
        await s.delete(await projectId(opts.project), name);
        out(`deleted ${name}`);
      });
    });
}
