// A real server for the MCP tests (same graph as the daemon, OCI runtime, busybox imported from the
// fixture registry as busybox:latest) and MCP SDK clients for both transports.

import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { importBusybox } from "../../server/test/harness/busybox-image.js";
import { startTestServer, type TestServer } from "../../server/test/harness/in-process.js";
import type { RegistryHandle } from "../../server/test/harness/registry.js";

export interface Live {
  t: TestServer;
  /** Base URL with the path prefix (`/v1/...` and `/mcp` go after it). */
  url: string;
  busybox: string;
  close(): Promise<void>;
}

export async function startLive(): Promise<Live> {
  const t = await startTestServer({ runtime: "oci" });
  let registry: RegistryHandle | undefined;
  const close = async () => {
    t.server.app.server.closeAllConnections();
    await t.close();
    await registry?.stop();
  };
  try {
    const { registry: r, image } = await importBusybox(t);
    registry = r;
    return { t, url: `${t.url}${t.config.pathPrefix}`, busybox: image, close };
  } catch (e) {
    await close();
    throw e;
  }
}

export type TransportName = "stdio" | "http";

const BIN = fileURLToPath(new URL("../bin/contree-mcp.js", import.meta.url));

/** An MCP SDK client connected to contree-mcp over stdio (the bin, as npx runs it) or to the server's /mcp. */
export async function connect(live: Live, transport: TransportName, token = live.t.token): Promise<Client> {
  const client = new Client({ name: "contree-mcp-test", version: "0.0.0" });
  if (transport === "stdio")
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [BIN, "--url", live.url, "--token", token],
        env: { PATH: process.env["PATH"] ?? "", HOME: "/nonexistent" },
        stderr: "inherit",
      }),
    );
  else
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${live.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
  return client;
}

/** The structured result of a successful tool call (fails the test with the message otherwise). */
export function structured(r: CallToolResult | Record<string, unknown>): Record<string, unknown> {
  const res = r as CallToolResult;
  if (res.isError) throw new Error(`tool error: ${JSON.stringify(res.content)}`);
  return (res.structuredContent ?? {}) as Record<string, unknown>;
}

export function errorText(r: CallToolResult | Record<string, unknown>): string {
  const res = r as CallToolResult;
  if (!res.isError) throw new Error(`expected a tool error, got ${JSON.stringify(res.structuredContent)}`);
  return res.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
}

/** stdout of an operation document as the tools return it. */
export function stdoutOf(op: Record<string, unknown>): string {
  const res = ((op["metadata"] as Record<string, unknown> | null)?.["result"] ?? {}) as Record<
    string,
    unknown
  >;
  const s = (res["stdout"] ?? {}) as Record<string, unknown>;
  const value = String(s["value"] ?? "");
  return s["encoding"] === "base64" ? Buffer.from(value, "base64").toString("utf8") : value;
}
