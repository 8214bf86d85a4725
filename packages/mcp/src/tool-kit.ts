import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ContreeApi } from "./contree-api.js";
import type { DirectoryStates } from "./directory-states.js";

export interface ToolContext {
  server: McpServer;
  api: ContreeApi;
  /**
   * Whether tools may touch the filesystem of the machine the MCP server runs on (upload from a
   * path, rsync, download). True for stdio (the user's own machine); false when contree-server
   * serves /mcp, where those paths would be the server host's.
   */
  localFiles: boolean;
  states: DirectoryStates;
}

/** A tool result the way FastMCP renders a returned model: JSON text plus the same object structured. */
export function ok(value: Record<string, unknown>) {
  return {
    content: [{ type: "text" as const, text: JSON.stringify(value, null, 2) }],
    structuredContent: value,
  };
}

export function requireLocalFiles(ctx: ToolContext, tool: string): void {
  if (!ctx.localFiles)
    throw new Error(
      `${tool} reads or writes files on the MCP server's own machine, which is not available over the HTTP endpoint of contree-server; use contree_upload with content or content_base64, and contree_read_file to read results`,
    );
}
