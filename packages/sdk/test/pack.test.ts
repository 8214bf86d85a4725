// The packed SDK as a user gets it: `npm pack` in packages/sdk, the tarball installed into an empty
// project in a temporary directory outside the workspace, type-checked there by an older TypeScript
// (strict; node16 for an ES module and a CommonJS file, bundler), and run against the real server from
// an ES module (`import`), a CommonJS script (`require`) and TypeScript files under tsx, one of them
// the README's quick start as printed.

import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LiveServer, startLiveServer } from "./live-server.js";

const execFileP = promisify(execFile);
const SDK = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const REPO = resolve(SDK, "../..");
const LONG = 240_000;
/** The oldest TypeScript the SDK supports (README); installed into the consumer from npm. */
const OLD_TYPESCRIPT = "5.0.4";
const TYPES_NODE = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as PkgJson)
  .devDependencies?.["@types/node"];

interface PkgJson {
  name?: string;
  license?: string;
  devDependencies?: Record<string, string>;
}

interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: { path: string; size: number }[];
}

/** What each consumer prints: where the SDK came from and what one run and one lookup gave. */
interface ConsumerReport {
  via: string;
  entry: string;
  version: string;
  exitCode: number;
  stdout: string;
  fileInResult: string;
  parentIsBase: boolean;
  notFoundGuard: boolean;
}

/** The environment of a process started from the consumer project: no npm context from this run. */
function consumerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(CONTREE_|NEBIUS_|npm_package_|npm_lifecycle_)/.test(k)) continue;
    if (/^npm_config_(local_prefix|prefix|workspaces?|global|include_workspace_root)$/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

async function run(cmd: string, args: string[], cwd: string, env = consumerEnv()) {
  try {
    return await execFileP(cmd, args, { cwd, env, maxBuffer: 32 << 20 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(" ")} (in ${cwd}) failed: ${err.message}\n${err.stdout}\n${err.stderr}`,
    );
  }
}

// The run every consumer makes: a file written from busybox, read back from the result image through
// the inspect API, the lineage checked, and a missing tag recognised by the error guard.
const CONSUMER_BODY = (via: string) => `
const client = new ContreeClient();
const base = await client.images.get("busybox:latest");
const result = await base.runAndWait("echo ${via} > /who && echo ${via}-ok");
const image = result.image;
if (!image) throw new Error("no result image");
let notFoundGuard = false;
try {
  await client.images.get("tag:no-such-image:anywhere");
} catch (e) {
  notFoundGuard = isNotFound(e);
}
const report = {
  via: "${via}",
  entry: ENTRY,
  version: SDK_VERSION,
  exitCode: result.exitCode,
  stdout: result.stdout,
  fileInResult: await image.read("/who", { as: "text" }),
  parentIsBase: (await image.parent())?.uuid === base.uuid,
  notFoundGuard,
};
console.log(JSON.stringify(report));
`;

const ESM_CONSUMER = `import { ContreeClient, isNotFound, SDK_VERSION } from "@contree/sdk";
const ENTRY = import.meta.resolve("@contree/sdk");
${CONSUMER_BODY("esm")}`;

const CJS_CONSUMER = `"use strict";
const { ContreeClient, isNotFound, SDK_VERSION } = require("@contree/sdk");
const ENTRY = require.resolve("@contree/sdk");
(async () => {
${CONSUMER_BODY("cjs")}
})().catch((e) => {
  console.error(e);
  process.exit(1);
});`;

// Type-checked under both resolutions, then run by tsx: typed values, a type-only import, a guard.
const TS_CONSUMER = `import { ContreeClient, type ImageHandle, isNotFound, type RunResult, SDK_VERSION } from "@contree/sdk";
const ENTRY: string = import.meta.resolve("@contree/sdk");
const typed: (e: unknown) => boolean = isNotFound;
export async function firstLine(image: ImageHandle): Promise<string> {
  const r: RunResult = await image.runAndWait(["cat", "/who"]);
  return r.stdout.split("\\n")[0] ?? "";
}
void typed;
${CONSUMER_BODY("tsx")}`;

// A CommonJS TypeScript file: resolves the \`require\` condition and its CommonJS typings.
const CTS_CONSUMER = `import { ContreeClient, isContreeError, type RunResult } from "@contree/sdk";
export function client(url: string, token: string): ContreeClient {
  return new ContreeClient({ url, token });
}
export async function exitOf(c: ContreeClient): Promise<number> {
  const r: RunResult = await (await c.images.get("busybox:latest")).runAndWait("true");
  return r.exitCode;
}
export const guard: (e: unknown) => boolean = isContreeError;
`;

/** The first ```ts block under README.md's "## Quick start". */
function readmeQuickStart(): string {
  const readme = readFileSync(join(SDK, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Quick start\n"));
  const block = /```ts\n([\s\S]*?)\n```/.exec(section);
  if (!block?.[1]) throw new Error("README.md has no ts block under ## Quick start");
  return `${block[1]}\n`;
}

function tsconfig(options: Record<string, unknown>, files: string[]): string {
  const compilerOptions = {
    strict: true,
    target: "ES2022",
    noEmit: true,
    skipLibCheck: false,
    types: ["node"],
  };
  return JSON.stringify({ compilerOptions: { ...compilerOptions, ...options }, files }, null, 2);
}

describe("npm pack, installed into an empty project outside the workspace", () => {
  const temp = mkdtempSync(join(tmpdir(), "contree-sdk-pack-"));
  const app = join(temp, "app");
  const stale = [join(SDK, "dist/esm/stale-module.js"), join(SDK, "dist/cjs/stale-module.d.ts")];
  let live: LiveServer | undefined;
  let pack: PackResult;
  /** Times dist/{esm,cjs}/index.js were found missing while `npm pack` rebuilt dist. */
  let distMissing = 0;
  let distPolls = 0;

  async function packAndInstall(): Promise<void> {
    // A built dist must exist before packing, as it does in a working tree after `npm run build`.
    if (!existsSync(join(SDK, "dist/esm/index.js")) || !existsSync(join(SDK, "dist/cjs/index.js"))) {
      await run(process.execPath, [join(SDK, "scripts/build-dist.mjs")], SDK, process.env);
    }
    for (const f of stale) writeFileSync(f, "// left over from a deleted source\n");
    const poll = setInterval(() => {
      distPolls++;
      if (!existsSync(join(SDK, "dist/esm/index.js")) || !existsSync(join(SDK, "dist/cjs/index.js"))) {
        distMissing++;
      }
    }, 2);
    try {
      const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", temp], SDK, process.env);
      [pack] = JSON.parse(stdout) as [PackResult];
    } finally {
      clearInterval(poll);
    }

    mkdirSync(app);
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: "consumer", private: true, type: "module" }),
    );
    await run(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        join(temp, pack.filename),
        `typescript@${OLD_TYPESCRIPT}`,
        `@types/node@${TYPES_NODE}`,
      ],
      app,
    );
    writeFileSync(join(app, "esm.mjs"), ESM_CONSUMER);
    writeFileSync(join(app, "cjs.cjs"), CJS_CONSUMER);
    writeFileSync(join(app, "main.ts"), TS_CONSUMER);
    writeFileSync(join(app, "lib.cts"), CTS_CONSUMER);
    writeFileSync(join(app, "quick.mts"), readmeQuickStart());
    // node16 as in @tsconfig/node20 (no DOM lib: Node's own types must suffice), then bundler.
    writeFileSync(
      join(app, "tsconfig.node16.json"),
      tsconfig({ module: "Node16", moduleResolution: "Node16", lib: ["ES2023"] }, [
        "main.ts",
        "lib.cts",
        "quick.mts",
      ]),
    );
    writeFileSync(
      join(app, "tsconfig.bundler.json"),
      tsconfig({ module: "ESNext", moduleResolution: "Bundler" }, ["main.ts", "quick.mts"]),
    );
  }

  beforeAll(async () => {
    const started = startLiveServer().then((l) => {
      live = l;
    });
    await Promise.all([packAndInstall(), started]);
  }, LONG);
  afterAll(async () => {
    for (const f of stale) rmSync(f, { force: true });
    await live?.close();
    rmSync(temp, { recursive: true, force: true });
  }, LONG);

  it("the tarball holds the ESM and CommonJS builds (JS + typings per module), README, API.md, LICENSE", () => {
    expect(pack.name).toBe("@contree/sdk");
    const modules = readdirSync(join(SDK, "src"))
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .map((f) => f.replace(/\.ts$/, ""));
    const expected = [
      "API.md",
      "LICENSE",
      "README.md",
      "package.json",
      "dist/cjs/package.json",
      ...modules.flatMap((m) => [
        `dist/esm/${m}.d.ts`,
        `dist/esm/${m}.js`,
        `dist/cjs/${m}.d.ts`,
        `dist/cjs/${m}.js`,
      ]),
    ].sort();
    // Stale outputs of deleted sources, tests, sources, maps or build info would show up here.
    expect(pack.files.map((f) => f.path).sort()).toEqual(expected);
    expect(pack.files.every((f) => f.size > 0)).toBe(true);
    const installed = join(app, "node_modules/@contree/sdk");
    expect(readFileSync(join(installed, "LICENSE"), "utf8")).toBe(
      readFileSync(join(REPO, "LICENSE"), "utf8"),
    );
    expect(JSON.parse(readFileSync(join(installed, "dist/cjs/package.json"), "utf8"))).toEqual({
      type: "commonjs",
    });
  });

  it("every package.json of the repository names the license", () => {
    for (const dir of [REPO, join(REPO, "packages/server"), SDK]) {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as PkgJson;
      expect(pkg.license, dir).toBe("Apache-2.0");
    }
  });

  it("packing rebuilt dist in place: it never went missing, and files no source produces were removed", () => {
    expect(distPolls).toBeGreaterThan(10);
    expect(distMissing).toBe(0);
    for (const f of stale) expect(existsSync(f), f).toBe(false);
  });

  it(
    `type-checks with TypeScript ${OLD_TYPESCRIPT}, strict, no @types but Node's: node16 (ESM + CommonJS) and bundler`,
    async () => {
      const tsc = join(app, "node_modules/typescript/bin/tsc");
      expect((await run(process.execPath, [tsc, "--version"], app)).stdout.trim()).toBe(
        `Version ${OLD_TYPESCRIPT}`,
      );
      expect(readdirSync(join(app, "node_modules/@types"))).toEqual(["node"]);
      // node16 with --explainFiles: also shows the CommonJS file took the require condition's typings.
      const node16 = await run(process.execPath, [tsc, "-p", "tsconfig.node16.json", "--explainFiles"], app);
      expect(node16.stdout).not.toMatch(/error TS\d+/);
      expect(node16.stdout).toContain("node_modules/@contree/sdk/dist/cjs/index.d.ts");
      expect(node16.stdout).toContain("node_modules/@contree/sdk/dist/esm/index.d.ts");
      const bundler = await run(process.execPath, [tsc, "-p", "tsconfig.bundler.json"], app);
      expect(bundler.stdout).toBe("");
    },
    LONG,
  );

  it(
    "runs against the real server from ESM import, CommonJS require and tsx",
    async () => {
      const server = live!;
      const env = consumerEnv({
        CONTREE_URL: server.url,
        CONTREE_TOKEN: server.token,
        CONTREE_HOME: join(temp, "home"),
      });
      const tsx = join(REPO, "node_modules/tsx/dist/cli.mjs");
      const consumers: [string, string[], string][] = [
        ["esm", ["esm.mjs"], "dist/esm/index.js"],
        ["cjs", ["cjs.cjs"], "dist/cjs/index.js"],
        ["tsx", [tsx, "main.ts"], "dist/esm/index.js"],
      ];
      const reports = await Promise.all(
        consumers.map(async ([, args]) => {
          const { stdout } = await run(process.execPath, args, app, env);
          return JSON.parse(stdout.trim().split("\n").pop() ?? "") as ConsumerReport;
        }),
      );
      for (const [i, [via, , entry]] of consumers.entries()) {
        const r = reports[i]!;
        expect(r.via).toBe(via);
        expect(r.entry.endsWith(`/app/node_modules/@contree/sdk/${entry}`), r.entry).toBe(true);
        expect(r.version).toBe(pack.version);
        expect(r.exitCode).toBe(0);
        expect(r.stdout).toBe(`${via}-ok\n`);
        expect(r.fileInResult).toBe(`${via}\n`);
        expect(r.parentIsBase).toBe(true);
        expect(r.notFoundGuard).toBe(true);
      }
      // The README's quick start, as a newcomer would run it.
      const quick = await run(process.execPath, [tsx, "quick.mts"], app, env);
      expect(quick.stdout).toBe("0 hello\n\nhello\na\n\nhello\nb\n\n");
    },
    LONG,
  );
});
