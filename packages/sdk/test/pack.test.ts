// What `npm pack` publishes: compiled JS with typings for every source module, the README, the API
// reference it links and package.json, nothing else; and the packed package imports and type-checks
// from a consumer's side.

import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SDK = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const REPO = resolve(SDK, "../..");
const LONG = 240_000;

interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: { path: string; size: number }[];
}

describe("npm pack", () => {
  const temp = mkdtempSync(join(tmpdir(), "contree-sdk-pack-"));
  afterAll(() => rmSync(temp, { recursive: true, force: true }));

  it(
    "--dry-run lists only dist JS + typings for each source module, README.md, API.md and package.json",
    async () => {
      const { stdout } = await run("npm", ["pack", "--dry-run", "--json"], { cwd: SDK, maxBuffer: 16 << 20 });
      const [pack] = JSON.parse(stdout) as PackResult[];
      expect(pack?.name).toBe("@contree/sdk");
      const files = pack!.files.map((f) => f.path).sort();
      const modules = readdirSync(join(SDK, "src"))
        .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
        .map((f) => f.replace(/\.ts$/, ""));
      const expected = [
        "API.md",
        "README.md",
        "package.json",
        ...modules.flatMap((m) => [`dist/${m}.d.ts`, `dist/${m}.js`]),
      ].sort();
      // Stale outputs of deleted sources, tests, sources, maps or build info would show up here.
      expect(files).toEqual(expected);
      expect(pack!.files.every((f) => f.size > 0)).toBe(true);
    },
    LONG,
  );

  it(
    "the tarball installs into a consumer that imports it and type-checks against its typings",
    async () => {
      const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", temp], {
        cwd: SDK,
        maxBuffer: 16 << 20,
      });
      const [pack] = JSON.parse(stdout) as PackResult[];
      const app = join(temp, "app");
      const pkgDir = join(app, "node_modules", "@contree", "sdk");
      mkdirSync(pkgDir, { recursive: true });
      await run("tar", ["-xzf", join(temp, pack!.filename), "-C", pkgDir, "--strip-components=1"]);
      writeFileSync(
        join(app, "package.json"),
        JSON.stringify({ name: "app", private: true, type: "module" }),
      );
      writeFileSync(
        join(app, "main.ts"),
        [
          'import { ContreeClient, isNotFound, type RunResult, SDK_VERSION } from "@contree/sdk";',
          "const client = new ContreeClient({ url: 'http://127.0.0.1:9', token: 't', env: {} });",
          "const handle = client.images.handle('00000000-0000-4000-8000-000000000000');",
          "export async function go(): Promise<RunResult> { return (await handle.run('true')).wait(); }",
          "export const v: string = SDK_VERSION;",
          "export const f: (e: unknown) => boolean = isNotFound;",
          "",
        ].join("\n"),
      );
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            module: "NodeNext",
            moduleResolution: "NodeNext",
            target: "ES2022",
            lib: ["ES2023", "DOM"],
            noEmit: true,
            skipLibCheck: false,
            types: [],
          },
          files: ["main.ts"],
        }),
      );
      const tsc = join(REPO, "node_modules/typescript/bin/tsc");
      const checked = await run(process.execPath, [tsc, "-p", join(app, "tsconfig.json")]).catch(
        (e: { stdout?: string }) => ({ stdout: e.stdout ?? "tsc failed" }),
      );
      expect(checked.stdout).toBe("");

      const probe =
        "const m = await import('@contree/sdk');" +
        "console.log(JSON.stringify([typeof m.ContreeClient, typeof m.isNotFound, m.SDK_VERSION, (await import('@contree/sdk/package.json', { with: { type: 'json' } })).default.name]));";
      const { stdout: out } = await run(process.execPath, ["--input-type=module", "-e", probe], { cwd: app });
      expect(JSON.parse(out)).toEqual(["function", "function", pack!.version, "@contree/sdk"]);
    },
    LONG,
  );
});
