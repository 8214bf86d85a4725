import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAppError } from "../../src/core/errors.js";
import { applyLayer } from "../../src/layers/layer-applier.js";
import { MergedView } from "../../src/layers/merged-view.js";
import { FIXTURES, openLayer, readManifest, tempDir, treeState } from "./helpers.js";

// Adversarial layers (mk-malicious.py): whatever they do, nothing may be written, changed or
// removed outside the layer being applied, and the sentinel ESCAPE_DIR must stay as it was.
describe("layer applier confinement", () => {
  let work: string;
  let esc: string;
  let cases: string[];

  beforeAll(() => {
    work = tempDir("escape");
    esc = path.join(work, "escape-target");
    fs.mkdirSync(esc);
    fs.writeFileSync(path.join(esc, "secret"), "host secret\n");
    fs.writeFileSync(path.join(esc, "victim"), "host victim\n");
    const out = execFileSync(
      "python3",
      [path.join(FIXTURES, "mk-malicious.py"), path.join(work, "mal"), esc],
      {
        encoding: "utf8",
      },
    );
    cases = out.trim().split(/\s+/);
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("generates the cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  const escState = (): string[] =>
    treeState(esc).concat(
      fs.readdirSync(esc).map((n) => `${n}=${fs.readFileSync(path.join(esc, n), "utf8")}`),
    );

  it.each([
    "symlink",
    "dotdot",
    "hardlink",
    "relsym",
    "whdotdot",
    "benign-abs-symlink-dir",
    "whdotdot-top",
    "whdotdotdot",
    "whempty",
    "symlink-loop",
    "self-loop",
    "hardlink-dotdot",
    "hardlink-dotdot-benign",
    "hardlink-through-symlink",
    "hardlink-to-outside-symlink",
    "dir-then-symlink",
    "dir-then-symlink-same-layer",
    "nested-relsym",
    "final-symlink-replaced",
    "whiteout-through-symlink",
    "opaque-through-symlink",
    "device-through-symlink",
    "overlay-xattr",
    "huge-pax",
    "truncated-body",
    "truncated-header",
  ])("%s", async (name) => {
    expect(cases).toContain(name);
    const man = readManifest(path.join(work, "mal", `man-${name}.json`));
    const root = path.join(work, "out", name);
    const escBefore = escState();
    const below: string[] = [];
    let failure: unknown;
    for (const [i, layer] of man.layers.entries()) {
      const dest = path.join(root, `L${i + 1}`);
      fs.mkdirSync(dest, { recursive: true });
      const outside = treeState(work, (p) => p === dest);
      try {
        await applyLayer(openLayer(path.join(work, "mal", "blobs"), layer), {
          dest,
          lowers: [...below].reverse(),
        });
      } catch (err) {
        failure = err;
      }
      expect(treeState(work, (p) => p === dest)).toEqual(outside);
      below.push(dest);
      if (failure) break;
    }
    expect(escState()).toEqual(escBefore);
    if (man.expect === "ok") {
      expect(failure).toBeUndefined();
      const view = new MergedView([...below].reverse());
      for (const p of man.inside ?? []) await expect(view.lstat(p)).resolves.toBeDefined();
    } else {
      expect(isAppError(failure) ? failure.kind : failure).toBe(man.expect);
      // public messages never name host paths
      expect((failure as Error).message).not.toContain(work);
    }
  });
});
