/** Both process backends (native posix_spawn, Node's child_process) behave the same. */
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { nativeSys } from "../../src/sys/native-sys.js";
import { type LaunchOptions, launch, type Proc } from "../../src/sys/proc.js";
import { sealedExecutable } from "../../src/sys/sealed-exec.js";

function text(s: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on("data", (b: Buffer) => parts.push(b));
    s.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    s.on("error", reject);
  });
}

async function sh(script: string, o: LaunchOptions = {}): Promise<{ p: Proc; out: string; err: string }> {
  const p = launch("/bin/sh", ["-c", script], o);
  const [out, err] = await Promise.all([text(p.stdout), text(p.stderr), p.exited]);
  return { p, out, err };
}

it("the native addon is built and loads (CI must not fall back silently)", () => {
  expect(nativeSys()).not.toBeNull();
});

describe.each(["native", "node"] as const)("launch (%s)", (backend) => {
  const o = { backend } as const;

  it("captures stdout and stderr and reports the exit code", async () => {
    const { p, out, err } = await sh("echo out; echo err >&2; exit 3", o);
    expect(out).toBe("out\n");
    expect(err).toBe("err\n");
    expect(await p.exited).toMatchObject({ code: 3, signal: null });
    expect(p.running).toBe(false);
  });

  it("reports a signal death by name, and kill() after reaping is harmless", async () => {
    const p = launch("/bin/sleep", ["30"], o);
    expect(p.running).toBe(true);
    expect(p.pid).toBeGreaterThan(1);
    p.kill("SIGKILL");
    expect(await p.exited).toMatchObject({ code: null, signal: "SIGKILL" });
    p.kill("SIGKILL");
  });

  // Regression: the watchdog read /proc/PID/stat after launch, when the native backend's waiter
  // thread could already have reaped a runtime that failed at once (ENOENT, a flaky internal error).
  it("records the start time at spawn, so it is known even after a process that exited at once is reaped", async () => {
    const p = launch("/bin/true", [], o);
    const mine = readFileSync("/proc/self/stat", "utf8");
    const selfStart = Number(mine.slice(mine.lastIndexOf(")") + 2).split(" ")[19]);
    await p.exited;
    expect(p.startTime).toMatch(/^\d+$/);
    expect(Number(p.startTime)).toBeGreaterThanOrEqual(selfStart);
  });

  it("gives a report pipe at fd 3 when asked, and no fd 3 otherwise", async () => {
    const p = launch("/bin/sh", ["-c", "echo report >&3; echo out"], { ...o, reportPipe: true });
    const [out, rep] = await Promise.all([text(p.stdout), p.report === null ? "" : text(p.report), p.exited]);
    expect(out).toBe("out\n");
    expect(rep).toBe("report\n");
    const q = await sh("echo x >&3 || echo no-fd3", o);
    expect(q.p.report).toBeNull();
    expect(q.out).toBe("no-fd3\n");
  });

  it("pipes stdin when asked, and gives /dev/null otherwise", async () => {
    const p = launch("/bin/cat", [], { ...o, stdin: "pipe" });
    const out = text(p.stdout);
    p.stdin?.end("hello\nworld");
    expect(await out).toBe("hello\nworld");
    expect((await p.exited).code).toBe(0);
    const q = await sh("cat; echo rc=$?", o);
    expect(q.p.stdin).toBeNull();
    expect(q.out).toBe("rc=0\n");
  });

  it("passes exactly the given env and cwd", async () => {
    const { out } = await sh('echo "$FOO|$HOME|$(pwd)"', {
      ...o,
      env: { FOO: "bar baz", PATH: "/usr/bin:/bin" },
      cwd: "/tmp",
    });
    expect(out).toBe("bar baz||/tmp\n");
  });

  it("starts children with default signal handling, no blocked signals, and no other child's pipes", async () => {
    // Another child's pipes held open would keep its reader from ever seeing EOF.
    const other = launch("/bin/sleep", ["5"], { ...o, stdin: "pipe" });
    try {
      // Builtins only for the masks: while the shell forks (grep, ls) it blocks signals itself.
      const { out } = await sh(
        'while read -r k v; do case $k in SigBlk:|SigIgn:) echo "$k	$v";; esac; done < /proc/self/status; ls -l /proc/$$/fd',
        o,
      );
      expect(out).toContain("SigBlk:\t0000000000000000");
      expect(out).toContain("SigIgn:\t0000000000000000");
      const others = [0, 1, 2].map((fd) => readlinkSync(`/proc/${other.pid}/fd/${fd}`));
      // (Node's backend uses socket pairs, posix_spawn plain pipes.)
      expect(others.every((l) => /^(pipe|socket):\[\d+\]$/.test(l))).toBe(true);
      for (const l of others) expect(out).not.toContain(l);
    } finally {
      other.kill("SIGKILL");
      await other.exited;
    }
  });

  it("detached children lead their own session", async () => {
    const script = 'read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; echo "$pid $sid"';
    const own = (await sh(script, { ...o, detached: true })).out.trim().split(" ");
    expect(own[0]).toBe(own[1]);
    const shared = (await sh(script, o)).out.trim().split(" ");
    expect(shared[0]).not.toBe(shared[1]);
  });

  it("reports the exit while a grandchild still holds the output pipe", async () => {
    const p = launch("/bin/sh", ["-c", "sleep 3 & echo started"], o);
    const out = text(p.stdout);
    p.stderr.resume();
    const t0 = Date.now();
    expect((await p.exited).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(await out).toBe("started\n");
  });

  it("reaps many concurrent children with the right statuses", async () => {
    const ps = Array.from({ length: 40 }, (_, i) => sh(`exit ${i % 7}`, o));
    const rs = await Promise.all(ps);
    expect(await Promise.all(rs.map((r) => r.p.exited.then((e) => e.code)))).toEqual(
      Array.from({ length: 40 }, (_, i) => i % 7),
    );
  });

  it("fails clearly for a program that does not exist", async () => {
    let failure: unknown;
    try {
      const p = launch("/nonexistent/program", [], o);
      failure = (await p.exited).error;
    } catch (e) {
      failure = e;
    }
    expect(failure).toMatchObject({ code: "ENOENT" });
  });
});

describe("sealedExecutable", () => {
  it("runs a program from a sealed in-memory copy that cannot be written", async () => {
    const sealed = sealedExecutable("sleep");
    expect(sealed).toMatch(/^\/proc\/self\/fd\/\d+$/);
    expect(sealedExecutable("sleep")).toBe(sealed); // one copy per binary
    // posix_spawn returns once the child's new image is mapped, a moment before the kernel has
    // set up its argv (/proc/PID/cmdline reads empty until then): a copy of sh that says it is
    // running gives the sync point.
    const shell = sealedExecutable("sh");
    expect(shell).toMatch(/^\/proc\/self\/fd\/\d+$/);
    // The trailing `:` keeps the shell itself running (no exec of its last command).
    const p = launch(shell as string, ["-c", "echo ready; sleep 5; :"], { argv0: "sh" });
    try {
      await new Promise<void>((resolve, reject) => {
        p.stdout.once("data", () => resolve());
        p.exited.then(() => reject(new Error("exited before it said it was ready")), reject);
      });
      expect(readlinkSync(`/proc/${p.pid}/exe`)).toMatch(/^\/memfd:contree-exec/);
      expect(readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0")[0]).toBe("sh");
    } finally {
      p.kill("SIGKILL");
      await p.exited;
    }
    // F_SEAL_WRITE: neither a write nor a truncation gets through.
    expect(() => writeFileSync(sealed as string, "#!/bin/sh\n")).toThrow(/EPERM|operation not permitted/i);
    // Close-on-exec: other children never hold the copy (the path means nothing inside them).
    const r = await sh(`ls -l /proc/$$/fd | grep -c memfd; "${sealed}" 0 2>/dev/null; echo rc=$?`);
    expect(r.out).toBe("0\nrc=127\n");
  });

  it("gives null for a program that is not there", () => {
    expect(sealedExecutable("no-such-program-anywhere")).toBeNull();
  });
});
