// API.md is generated from the exported types; a fresh run must reproduce the committed file, so the
// reference cannot drift from the code (after changing exports or doc comments: `npm run gen:api`).

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SDK = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");

describe("API reference", () => {
  const temp = mkdtempSync(join(tmpdir(), "contree-sdk-api-"));
  afterAll(() => rmSync(temp, { recursive: true, force: true }));

  it("API.md equals a fresh run of scripts/gen-api-reference.mjs", async () => {
    const out = join(temp, "API.md");
    await run(process.execPath, [join(SDK, "scripts/gen-api-reference.mjs"), out], { cwd: temp });
    const fresh = readFileSync(out, "utf8");
    expect(fresh).toContain("### `ContreeClient`");
    expect(fresh).toContain(
      "- `run(command: string | readonly string[], opts?: RunOptions): Promise<RunOperation>`",
    );
    expect(fresh, "API.md is stale: run `npm run gen:api` in packages/sdk").toBe(
      readFileSync(join(SDK, "API.md"), "utf8"),
    );
  }, 60_000);
});
