import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
import { Mknod } from "./mknod.js";

describe("mknod helper", () => {
  let dir: string;
  let m: Mknod;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "contree-mknod-"));
    m = new Mknod();
  });
  afterEach(() => {
    m.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("creates devices and FIFOs at paths with quotes, spaces, newlines and $()", async () => {
    const names = ["plain", "it's", "a b", "new\nline", "$(touch pwned)", "`id`"];
    for (const [i, n] of names.entries())
      await m.make(path.join(dir, n), i % 2 ? "fifo" : "char", 0o640, 1, 3);
    expect(fs.readdirSync(dir).sort()).toEqual([...names].sort());
    const st = fs.lstatSync(path.join(dir, "plain"));
    expect([st.isCharacterDevice(), st.rdev, st.mode & 0o777]).toEqual([true, 259, 0o640]);
    expect(fs.lstatSync(path.join(dir, "it's")).isFIFO()).toBe(true);
  });

  it("reports a failure and keeps working", async () => {
    fs.writeFileSync(path.join(dir, "taken"), "");
    const err = await m.make(path.join(dir, "taken"), "char", 0o600, 0, 0).catch((e: unknown) => e);
    expect(isAppError(err) && err.kind).toBe("internal");
    await m.make(path.join(dir, "after"), "block", 0o600, 7, 0);
    expect(fs.lstatSync(path.join(dir, "after")).isBlockDevice()).toBe(true);
  });
});
