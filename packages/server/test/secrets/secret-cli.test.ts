/** `contree-server secret set|list|delete` (built CLI): the value from stdin or a file, never argv, never printed. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openMetadata, openSecrets } from "../../src/main.js";

const BIN = path.resolve(import.meta.dirname, "../../bin/contree-server.js");

function cli(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CONTREE_")) env[k] = v;
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? "");
  });
}

describe("contree-server secret (built CLI)", () => {
  let root: string;
  let data: string;
  const value = `xoxb-${randomBytes(16).toString("hex")}`;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "contree-secret-cli-"));
    data = path.join(root, "data");
    const store = openMetadata(data);
    await store.projects.create("team");
    await store.close();
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("set from stdin and from a file, list, delete; the value is never printed", async () => {
    const set = await cli(["secret", "set", "SLACK", "--project", "team", "--data-dir", data], `${value}\n`);
    expect(set).toMatchObject({ code: 0, stdout: `created SLACK (${value.length} bytes)\n` });
    const file = path.join(root, "v");
    await writeFile(file, `${value}-2\n`);
    const again = await cli([
      "secret",
      "set",
      "SLACK",
      "--project",
      "team",
      "--from-file",
      file,
      ...["--host", "hooks.slack.com", "--host", "*.Slack.com", "--no-env"],
      "--data-dir",
      data,
    ]);
    expect(again.stdout).toBe(`replaced SLACK (${value.length + 2} bytes)\n`);
    const list = await cli(["secret", "list", "--project", "team", "--data-dir", data]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(
        `^NAME\\tBYTES\\tENV\\tHOSTS\\tCREATED\\tUPDATED\\tLAST_USED\\nSLACK\\t${value.length + 2}\\tno\\thooks\\.slack\\.com,\\*\\.slack\\.com\\t`,
      ),
    );
    for (const r of [set, again, list]) expect(r.stdout + r.stderr).not.toContain(value);
    // What the CLI stored is what a run gets (the final newline was not part of it).
    const store = openMetadata(data);
    try {
      const team = await store.projects.resolve("team");
      const got = await openSecrets({ dataDir: data }, store).reveal(team.id, [
        { name: "SLACK", host: "hooks.slack.com" },
      ]);
      expect(got.get("SLACK")?.toString()).toBe(`${value}-2`);
    } finally {
      await store.close();
    }
    const del = await cli(["secret", "delete", "SLACK", "--project", "team", "--data-dir", data]);
    expect(del).toMatchObject({ code: 0, stdout: "deleted SLACK\n" });
    const gone = await cli(["secret", "delete", "SLACK", "--project", "team", "--data-dir", data]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('contree-server: secret "SLACK" not found\n');
  }, 120_000);

  it("an empty or short value is refused with the reason", async () => {
    const r = await cli(["secret", "set", "X", "--project", "team", "--data-dir", data], "abc\n");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/8 to 65536 bytes/);
  }, 60_000);
});
