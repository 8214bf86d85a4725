// The tree-search example, run as a user would (`npx tsx …`) against the real server.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LiveServer, startLiveServer } from "./live-server.js";

const REPO_ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const LONG = 300_000;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", fail);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

describe("examples/tree-search.ts", () => {
  let live: LiveServer;
  let home: string;
  beforeAll(async () => {
    live = await startLiveServer();
    home = mkdtempSync(join(tmpdir(), "contree-sdk-example-"));
  }, LONG);
  afterAll(async () => {
    await live?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  }, LONG);

  it(
    "runs against the server, prints the lineage and exits 0",
    async () => {
      const env: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) if (!/^(CONTREE_|NEBIUS_)/.test(k)) env[k] = v;
      Object.assign(env, { CONTREE_URL: live.url, CONTREE_TOKEN: live.token, CONTREE_HOME: home });
      const r = await run("npx", ["tsx", "packages/sdk/examples/tree-search.ts"], env, LONG - 30_000);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      const out = r.stdout;
      expect(out).toContain(`base image busybox:latest = ${live.busybox}`);
      expect(out).toMatch(/round 1 best: \+\d+ \(score \d+\)/);
      expect(out).toMatch(/round 2 best: \+\d+ \(score \d+\)/);
      expect(out).toMatch(/server lineage of best image: parent [0-9a-f]{8}\n/);
      // The tree: root, four children, the chosen one with three children, a branch after rollback.
      const tree = out.slice(out.indexOf("lineage explored"));
      expect(tree).toMatch(/^root [0-9a-f]{8} {2}\*$/m);
      expect(tree.match(/score=\d+ [0-9a-f]{8}/g)).toHaveLength(7);
      expect(tree.match(/ {2}\*$/gm)).toHaveLength(3); // root, round-1 best, round-2 best
      expect(tree).toContain("+99 (after rollback)");
      // The rolled-back file is a prefix of the newer one.
      const older = /round-1 image \S+: "(.*)"/.exec(out)?.[1];
      const newer = /round-2 image \S+: "(.*)"/.exec(out)?.[1];
      expect(older).toBeTruthy();
      expect(newer?.startsWith(older!)).toBe(true);
      expect(newer).not.toBe(older);
      // The example removes its tag again.
      expect((await live.t.api("/v1/inspect/?tag=tree-search/best", { redirect: "manual" })).status).toBe(
        404,
      );
    },
    LONG,
  );
});
