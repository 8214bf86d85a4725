import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = path.resolve(import.meta.dirname, "../../bin/contree-server.js");

describe("contree-server doctor (built CLI)", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "contree-doctor-test-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  // Regression: the self-tests ran in a 0700 temp dir that crun's user-namespaced sandbox
  // could not enter, so doctor reported crun as broken on a host where serve uses it fine.
  it("passes every installed driver's self-test", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [BIN, "doctor", "--data-dir", path.join(root, "data")],
      { timeout: 180_000, maxBuffer: 1 << 20 },
    ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? "" }));
    const drivers = stdout.split("\n").filter((l) => /^\S+\s+driver (crun|runc|runsc) /.test(l));
    expect(drivers.map((l) => l.split(/\s+/).slice(0, 3).join(" ")).sort()).toEqual([
      "ok driver crun",
      "ok driver runc",
      "ok driver runsc",
    ]);
  }, 200_000);
});
