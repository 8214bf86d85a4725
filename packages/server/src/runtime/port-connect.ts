/**
 * A byte stream to a TCP port on a running sandbox's own loopback. crun and runc: a socket the
 * host makes in the sandbox's netns (Sandbox.connectLoopback, ~1 ms). gVisor (and without the
 * native addon): the sandbox init's relay mode (`contree-init connect PORT`, native/port-relay.h) is exec'd in
 * the sandbox and bridges its stdio to 127.0.0.1:PORT there. It is a process of the sandbox (its
 * namespaces, cgroup, seccomp, user), so it works with networking disabled, under gVisor's own
 * netstack too, and gives the sandbox nothing it did not have: no socket, path or fd of the host
 * enters it, and it cannot open anything the sandbox could not.
 *
 * Why not the host-side connect everywhere: runsc keeps its network stack in the sandbox's user
 * space, so no host netns holds a gVisor guest's ports (bench/ports/connect.ts measures both).
 */
import { Duplex } from "node:stream";
import { failedPrecondition } from "../core/errors.js";
import type { ProcessHandle, Sandbox } from "./runtime-driver.js";
import { INIT_IN_SANDBOX, initBinary } from "./sandbox-init.js";

/** Exit code of the relay when nothing listens on the port. */
export const RELAY_REFUSED = 111;

export interface PortUser {
  uid: number;
  gid: number;
}

/**
 * A Duplex over the relay's stdin (towards the port) and stdout (from it). Backpressure both
 * ways: a write completes once the pipe took it, and the relay is read only as fast as the
 * consumer reads. destroy() kills the relay; `exited` settles with its exit code.
 */
export class PortStream extends Duplex {
  readonly exited: Promise<number>;

  constructor(private readonly proc: ProcessHandle) {
    super({ allowHalfOpen: true });
    this.exited = proc.wait().then(
      (s) => s.exitCode,
      () => -1,
    );
    const out = proc.stdout;
    out.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) out.pause();
    });
    out.once("end", () => this.push(null));
    out.once("error", (e) => this.destroy(e));
    proc.stderr.resume();
    proc.stdin?.on("error", () => undefined);
  }

  override _read(): void {
    this.proc.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const stdin = this.proc.stdin;
    if (stdin === null || stdin.destroyed) cb(new Error("port stream closed"));
    else stdin.write(chunk, (e) => cb(e ?? null));
  }

  /**
   * The end of what the client sends is not passed on as a half-close: HTTP frames its bodies,
   * and servers take a half-closed connection for a client that left (busybox httpd then stalls
   * its CGI answer until a timeout). The connection ends when the server closes it or when this
   * stream is destroyed.
   */
  override _final(cb: (e?: Error | null) => void): void {
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.proc.stdin?.destroy();
    this.proc.stdout.destroy();
    this.proc.stderr.destroy();
    void this.proc.kill("SIGKILL").catch(() => undefined);
    cb(err);
  }

  // What http.request and raw sockets call on a connection; a pipe has none of it.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/**
 * Opens a stream to `port` on the sandbox's loopback: from the host where the driver allows it
 * (Sandbox.connectLoopback: crun, runc), else through the relay exec'd as `user` (the
 * instance's main user).
 */
export async function connectPort(sandbox: Sandbox, port: number, user: PortUser): Promise<Duplex> {
  const direct = await sandbox.connectLoopback?.(port);
  if (direct) return direct;
  if ((await initBinary()) === null)
    throw failedPrecondition("exposed ports need the native helpers built (npm run build)");
  const proc = await sandbox.exec(
    {
      args: [INIT_IN_SANDBOX, "connect", String(port)],
      env: ["PATH=/usr/bin:/bin"],
      cwd: "/",
      uid: user.uid,
      gid: user.gid,
    },
    { stdin: "pipe" },
  );
  return new PortStream(proc);
}
