import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ContreeApi } from "./contree-api.js";
import { DirectoryStates } from "./directory-states.js";
import type { HttpSend } from "./http.js";
import { registerResources } from "./resources.js";
import type { ToolContext } from "./tool-kit.js";
import { registerDiffTool } from "./tools/diff.js";
import { registerFileTools } from "./tools/files.js";
import { registerGuideTool } from "./tools/guide.js";
import { registerImageTools } from "./tools/images.js";
import { registerOperationTools } from "./tools/operations.js";
import { registerRunTools } from "./tools/run.js";

export interface ContreeMcpOptions {
  /** See ToolContext.localFiles. Default true (stdio). */
  localFiles?: boolean;
}

const INSTRUCTIONS = `ConTree runs commands in isolated sandboxes from immutable images. Look for a prepared image (contree_list_images) before importing; save useful states with disposable=false and tag them; branch with contree_fork or several runs from one image; read files of an image with contree_read_file instead of running cat. Guide: contree_get_guide or contree://guide/{section}.`;

/** An MCP server whose tools and resources act on the ConTree API reached through `send`. */
export function createContreeMcpServer(send: HttpSend, options: ContreeMcpOptions = {}): McpServer {
  const server = new McpServer(
    { name: "contree-mcp", version: "0.1.0" },
    { instructions: INSTRUCTIONS, capabilities: { tools: {}, resources: {}, logging: {} } },
  );
  const ctx: ToolContext = {
    server,
    api: new ContreeApi(send),
    localFiles: options.localFiles ?? true,
    states: new DirectoryStates(),
  };
  registerImageTools(ctx);
  registerRunTools(ctx);
  registerFileTools(ctx);
  registerDiffTool(ctx);
  registerOperationTools(ctx);
  registerGuideTool(ctx);
  registerResources(ctx);
  return server;
}
