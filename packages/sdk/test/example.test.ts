// The examples (tree search, session, live sandbox), run as a user would (`npx tsx …`) against the
// real server.

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

describe("examples", () => {
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

  /** The environment a user would have: this server's URL and token, nothing else of ours. */
  function userEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(CONTREE_|NEBIUS_)/.test(k)) env[k] = v;
    return Object.assign(env, { CONTREE_URL: live.url, CONTREE_TOKEN: live.token, CONTREE_HOME: home });
  }

  /** `npx tsx examples/NAME.ts`, with `@contree/sdk` resolved by the examples' tsconfig. */
  function example(name: string) {
    const args = [
      "tsx",
      "--tsconfig",
      "packages/sdk/examples/tsconfig.json",
      `packages/sdk/examples/${name}`,
    ];
    return run("npx", args, userEnv(), LONG - 30_000);
  }

  it(
    "session.ts: steps move the session, a checked failure does not, history, checkout, forks",
    async () => {
      const r = await example("session.ts");
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      const out = r.stdout;
      expect(out).toContain(`start: ${live.busybox}`);
      expect(out).toContain("  counter says 1\n  counter says 2\n  counter says 3\n");
      expect(out).toContain('failed step: exit 3, stderr "disk on fire"');
      expect(out).toContain("after the failure the state is still count=3");
      // Start, init, three increments, the failed step, the read after it.
      expect(out.match(/^ {2}#\d+ [0-9a-f]{8} /gm)).toHaveLength(7);
      expect(out).toMatch(/^ {2}#5 [0-9a-f]{8} echo count=999 .* exit 3$/m);
      expect(out).toMatch(/^ {2}#6 [0-9a-f]{8} cat \/app\/state exit 0, unchanged$/m);
      expect(out).toContain("checkout #2: count=1");
      expect(out).toContain("fork 0: count=2\nfork 1: count=2\nfork 2: count=2\n");
      expect(out).toContain("the session itself: count=1 (forks do not move it)");
    },
    LONG,
  );

  it(
    "live-sandbox.ts: a daemon lives across execs, files, exec options and callbacks, commit",
    async () => {
      const r = await example("live-sandbox.ts");
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      const out = r.stdout;
      expect(out).toMatch(/^sandbox [0-9a-f-]{36} is running$/m);
      expect(out).toContain("daemon still counting between execs: yes");
      expect(out).toContain("  | hello from /srv in demo mode\n  | stdin reached the process\n");
      expect(out).toContain("exec exit code 0");
      const committed = /^committed: ([0-9a-f-]{36}) \(sandbox is committed\)$/m.exec(out)?.[1];
      expect(committed).toBeDefined();
      expect(out).toContain("image has /srv/greet.sh: true");
      expect(out).toContain("run from the image: hello again from /root in committed mode");
      // The image is real: the server has it, with the file the sandbox wrote.
      const res = await live.t.api(`/v1/inspect/${committed}/download?path=/srv/greet.sh`);
      expect(await res.text()).toContain("$GREETING");
    },
    LONG,
  );

  it(
    "tree-search.ts runs against the server, prints the lineage and exits 0",
    async () => {
      const env = userEnv();
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
