/** The init's report is written by a process the sandboxed command could impersonate: parsed strictly. */
import { existsSync } from "node:fs";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  collectReport,
  parseInitReport,
  readReportFile,
  withReport,
} from "../../src/runtime/sandbox-init.js";
import { runCommand } from "../../src/sys/run-command.js";

const GOOD = "contree-init/1 0 -1 1500 200 3000 0 0 0 175 1 0 8 4096 0 0 0 26 3";

describe("init report", () => {
  it("parses the 16 rusage fields in struct rusage order", () => {
    expect(parseInitReport(`${GOOD}\n`)).toEqual({
      exitCode: 0,
      signal: -1,
      rusage: {
        utimeUs: 1500,
        stimeUs: 200,
        maxrssKb: 3000,
        ixrssKb: 0,
        idrssKb: 0,
        isrssKb: 0,
        minflt: 175,
        majflt: 1,
        nswap: 0,
        inblock: 8,
        oublock: 4096,
        msgsnd: 0,
        msgrcv: 0,
        nsignals: 0,
        nvcsw: 26,
        nivcsw: 3,
      },
    });
  });

  it("takes the last well-formed line and refuses malformed or out-of-range ones", () => {
    const killed = "contree-init/1 137 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
    expect(parseInitReport(`${GOOD}\n${killed}\n`)?.signal).toBe(9);
    expect(parseInitReport(`${killed}\ngarbage\n`)?.exitCode).toBe(137);
    for (const bad of [
      "",
      "contree-init/2 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
      "contree-init/1 0 -1 0 0 0",
      "contree-init/1 256 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
      "contree-init/1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
      "contree-init/1 0 65 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
      "contree-init/1 0 -1 -5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
      "contree-init/1 0 -1 1e9 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
      "contree-init/1 0 -1 99999999999999999999 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    ])
      expect(parseInitReport(bad), bad).toBeNull();
    // Only the first 4 KiB are looked at: a report after a flood is not read.
    expect(parseInitReport(`${"x".repeat(5000)}\n${GOOD}\n`)).toBeNull();
  });

  it("without a report the runtime's view stands; with one, the report's", () => {
    const seen = { exitCode: 137, signal: 9 };
    expect(withReport(seen, null)).toEqual(seen);
    expect(withReport(seen, parseInitReport(GOOD))).toMatchObject({ exitCode: 0, signal: -1 });
  });

  it("reads a report file without following symlinks or blocking on a FIFO", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "init-report-"));
    try {
      await writeFile(path.join(dir, "run"), `${GOOD}\n`);
      expect(readReportFile(path.join(dir, "run"))).toBe(`${GOOD}\n`);
      await writeFile(path.join(dir, "secret"), `${GOOD}\n`);
      await symlink(path.join(dir, "secret"), path.join(dir, "link"));
      expect(readReportFile(path.join(dir, "link"))).toBe("");
      expect(existsSync(path.join(dir, "secret"))).toBe(true);
      expect(readReportFile(path.join(dir, "missing"))).toBe("");
      expect((await runCommand("mkfifo", [path.join(dir, "fifo")])).code).toBe(0);
      expect(readReportFile(path.join(dir, "fifo"))).toBe("");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("takes the report at its line, even while a sandboxed process holds the pipe's write end", async () => {
    const pipe = new PassThrough();
    const c = collectReport(pipe);
    pipe.write(`${GOOD}\n`); // and never ended: a copy of the write end is held elsewhere
    expect(await c.text).toBe(`${GOOD}\n`);
    expect(pipe.destroyed).toBe(true);
    const silent = new PassThrough();
    const d = collectReport(silent);
    silent.write("contree-init/1 0");
    d.stop();
    expect(await d.text).toBe("contree-init/1 0");
    expect(silent.destroyed).toBe(true);
  });
});
