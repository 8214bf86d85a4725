import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { loadCliConfig } from "./config.js";
import { fetchSend } from "./http.js";
import { createContreeMcpServer } from "./server.js";

const USAGE = `usage: contree-mcp [--url URL] --token TOKEN
  stdio MCP server for a ConTree API. Also reads CONTREE_MCP_URL / CONTREE_MCP_TOKEN and
  ~/.config/contree/mcp.ini (or the file named by CONTREE_MCP_CONFIG).`;

/** `contree-mcp`: the MCP server on stdin/stdout (logs and errors go to stderr only). */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const mode = argv.find((a) => a.startsWith("--mode="))?.slice(7) ?? argv[argv.indexOf("--mode") + 1];
  if (argv.includes("--mode") || argv.some((a) => a.startsWith("--mode=")))
    if (mode !== "stdio") {
      process.stderr.write(
        `contree-mcp: only --mode stdio is served here; for HTTP use contree-server's /mcp\n`,
      );
      return 2;
    }
  let config: ReturnType<typeof loadCliConfig>;
  try {
    config = loadCliConfig(argv, env);
  } catch (err) {
    process.stderr.write(`contree-mcp: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const server = createContreeMcpServer(fetchSend(config.url, config.token));
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve;
    process.stdin.once("end", resolve);
  });
  await server.connect(transport);
  await closed;
  await server.close();
  return 0;
}
