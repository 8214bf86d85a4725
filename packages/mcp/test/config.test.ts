import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_URL, loadCliConfig, parseIni } from "../src/config.js";

describe("contree-mcp settings", () => {
  const dir = mkdtempSync(join(tmpdir(), "contree-mcp-config-"));
  const ini = join(dir, "mcp.ini");
  writeFileSync(ini, "[DEFAULT]\nurl = http://from-file\ntoken = file-token\n\n[http]\nport = 1\n");

  it("reads the [DEFAULT] section of the official INI file", () => {
    expect(parseIni("url=http://a\n[http]\nurl = http://b\n; c\n")).toEqual({ url: "http://a" });
  });

  it("takes the command line over the environment over the config file", () => {
    const env = { CONTREE_MCP_CONFIG: ini };
    expect(loadCliConfig([], env)).toEqual({ url: "http://from-file", token: "file-token" });
    expect(loadCliConfig([], { ...env, CONTREE_MCP_TOKEN: "env-token" })).toEqual({
      url: "http://from-file",
      token: "env-token",
    });
    expect(
      loadCliConfig(["--url", "http://cli", "--token=cli-token"], { ...env, CONTREE_MCP_URL: "http://env" }),
    ).toEqual({ url: "http://cli", token: "cli-token" });
  });

  it("defaults the URL and requires a token", () => {
    const none = { CONTREE_MCP_CONFIG: join(dir, "absent.ini") };
    expect(loadCliConfig(["--token", "t"], none)).toEqual({ url: DEFAULT_URL, token: "t" });
    expect(() => loadCliConfig([], none)).toThrow(/token is required/);
  });
});
