// API.md is generated from the exported types; a fresh run must reproduce the committed file, so the
// reference cannot drift from the code (after changing exports or doc comments: `npm run gen:api`).

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import * as errors from "../src/errors.js";
import * as sdk from "../src/index.js";

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

  it("the index exports the public API only: no transport, SSE, INI or retry internals", () => {
    const internals = [
      "SseParser",
      "parseSseStream",
      "parseIni",
      "selectProfile",
      "loadProfile",
      "resolveConfig",
      "Transport",
      "errorForStatus",
      "backoffDelay",
      "isRetryable",
      "parseRetryAfter",
      "encodeStreamRepr",
      "StreamReprTextDecoder",
      "streamEvents",
      "outputText",
      "isUuid",
      "uuidFromLocation",
      "normalizeRegistryRef",
    ];
    expect(Object.keys(sdk).filter((k) => internals.includes(k))).toEqual([]);
    const reference = readFileSync(join(SDK, "API.md"), "utf8");
    for (const name of internals) expect(reference).not.toContain(`### \`${name}\``);
    // Every error class and guard is public; only the status → class mapping is internal.
    const errorExports = Object.keys(errors).filter((k) => k !== "errorForStatus");
    expect(errorExports.filter((k) => !(k in sdk))).toEqual([]);
    expect(Object.keys(sdk)).toContain("ContreeClient");
  });
});
