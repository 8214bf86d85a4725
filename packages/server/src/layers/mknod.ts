/**
 * Node has no mknod(2). Spawning `mknod` from Node costs a fork of the whole Node process per
 * node (2–3 ms idle, 70–100 ms on a loaded host); instead one small `sh` child is started on first
 * use and runs `mknod` for each request, so a layer with devices pays one Node spawn.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { internal } from "../core/errors.js";

type NodeKind = "char" | "block" | "fifo";

/** Single-quote for sh: the path is data, never code. */
function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export class Mknod {
  private child: ChildProcessByStdio<Writable, Readable, null> | null = null;
  private waiting: Array<{ ok: () => void; fail: (err: Error) => void }> = [];
  private out = "";
  private dead: Error | null = null;

  async make(path: string, kind: NodeKind, mode: number, major: number, minor: number): Promise<void> {
    const child = this.start();
    const type = kind === "char" ? "c" : kind === "block" ? "b" : "p";
    const nums = kind === "fifo" ? "" : ` ${Math.trunc(major)} ${Math.trunc(minor)}`;
    const cmd = `mknod -m ${(mode & 0o777).toString(8)} ${shQuote(path)} ${type}${nums} 2>/dev/null && echo 0 || echo 1\n`;
    await new Promise<void>((ok, fail) => {
      if (this.dead) return fail(this.dead);
      this.waiting.push({ ok, fail });
      child.stdin.write(cmd);
    });
  }

  private start(): ChildProcessByStdio<Writable, Readable, null> {
    if (this.child) return this.child;
    const child = spawn("sh", ["-s"], { stdio: ["pipe", "pipe", "ignore"] });
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      this.out += d;
      for (let nl = this.out.indexOf("\n"); nl >= 0; nl = this.out.indexOf("\n")) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        const w = this.waiting.shift();
        if (line === "0") w?.ok();
        else w?.fail(internal("cannot create a device node"));
      }
    });
    const die = (err: Error): void => {
      this.dead = internal("device node helper stopped", { cause: err });
      for (const w of this.waiting.splice(0)) w.fail(this.dead);
    };
    child.on("error", die);
    child.on("exit", (code) => die(new Error(`sh exited with ${code}`)));
    child.stdin.on("error", die);
    this.child = child;
    return child;
  }

  /** End the helper (by its own pid, via the handle); safe to call more than once. */
  close(): void {
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null && c.signalCode === null) {
      c.stdin.end();
      c.kill("SIGKILL");
    }
  }
}
