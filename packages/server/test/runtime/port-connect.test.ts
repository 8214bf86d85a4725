/**
 * A sandbox's loopback port from the host, both ways the server has (runtime/port-connect.ts), on
 * crun and runc: the socket made in the sandbox's netns (Sandbox.connectLoopback) and the relay
 * exec'd in the sandbox (what runsc uses, and crun/runc without the native addon). The server-level
 * tests (test/ports) go through connectLoopback on these drivers, so the relay is checked here.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBusyboxRootfs } from "../../src/runtime/busybox.js";
import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../src/runtime/oci/runc-driver.js";
import { connectPort } from "../../src/runtime/port-connect.js";
import type { RuntimeDriver, Sandbox } from "../../src/runtime/runtime-driver.js";
import { mountRootfs, unmount } from "../../src/sys/overlay-mount.js";

/** Writes `text` and resolves with what comes back once it has all come back. */
function echo(s: Duplex, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    s.on("data", (b: Buffer) => {
      got += b.toString();
      if (got.length >= text.length) resolve(got);
    });
    s.once("error", reject);
    s.write(text);
  });
}

const drivers: Array<[string, (stateDir: string) => RuntimeDriver]> = [
  ["crun", (stateDir) => new CrunDriver({ stateDir })],
  ["runc", (stateDir) => new RuncDriver({ stateDir })],
];

for (const [name, make] of drivers) {
  describe(`loopback ports from the host: ${name}`, () => {
    let root = "";
    let merged = "";
    let sandbox: Sandbox | undefined;
    let release: (() => void) | undefined;

    beforeAll(async () => {
      root = await mkdtemp(path.join(tmpdir(), `port-connect-${name}-`));
      await chmod(root, 0o711);
      const base = path.join(root, "layers", `base-${"0".repeat(35)}`);
      await buildBusyboxRootfs(base);
      const driver = make(path.join(root, "state"));
      const dir = path.join(root, "run");
      merged = path.join(dir, "merged");
      const lease = driver.userRange?.() ?? null;
      release = () => lease?.release();
      await mountRootfs({
        lowers: [base],
        upper: path.join(dir, "upper"),
        work: path.join(dir, "work"),
        target: merged,
        ...(lease === null ? {} : { idmap: lease.range }),
      });
      sandbox = await driver.start({
        id: `pc${process.pid}-${name}`,
        rootfs: merged,
        bundleDir: path.join(dir, "bundle"),
        hostname: "sandbox",
        network: "none",
        limits: { memoryBytes: 256 * 1024 * 1024, pids: 256 },
        stdin: "null",
        // An echo server on the sandbox's loopback only.
        process: {
          args: ["/bin/nc", "-ll", "-p", "7070", "-e", "/bin/cat"],
          env: ["PATH=/bin"],
          cwd: "/",
          uid: 0,
          gid: 0,
        },
        ...(lease === null ? {} : { users: lease.range }),
      });
    }, 60_000);

    afterAll(async () => {
      await sandbox?.destroy();
      if (merged !== "") await unmount(merged).catch(() => undefined);
      release?.();
      if (root !== "") await rm(root, { recursive: true, force: true });
    });

    /** Retries while nc is not listening yet. */
    async function until<T>(f: () => Promise<T>): Promise<T> {
      for (let i = 0; ; i++) {
        try {
          return await f();
        } catch (e) {
          if (i > 100) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }

    it("connectLoopback: a socket in the sandbox's netns reaches its loopback server", async () => {
      const s = await until(async () => {
        const c = await sandbox?.connectLoopback?.(7070);
        if (!c) throw new Error("no host-side connection on this driver");
        expect(await echo(c, "ping\n")).toBe("ping\n");
        return c;
      });
      s.destroy();
      // Nothing listens there: the (non-blocking) connect fails on the socket.
      const refused = (await sandbox?.connectLoopback?.(7071)) as Duplex;
      const code = await new Promise<string | undefined>((resolve) => {
        refused.once("error", (e: NodeJS.ErrnoException) => resolve(e.code));
        refused.once("close", () => resolve("closed without error"));
        refused.resume();
      });
      expect(code).toBe("ECONNREFUSED");
    });

    it("the relay exec'd in the sandbox reaches it too, and ends when nothing listens", async () => {
      const s = sandbox as Sandbox;
      // The same sandbox seen without its host-side path: what runsc (or no addon) takes.
      const relayOnly = Object.create(s, { connectLoopback: { value: undefined } }) as Sandbox;
      const c = await until(async () => {
        const r = await connectPort(relayOnly, 7070, { uid: 0, gid: 0 });
        expect(await echo(r, "through the relay\n")).toBe("through the relay\n");
        return r;
      });
      c.destroy();
      const none = await connectPort(relayOnly, 7071, { uid: 0, gid: 0 });
      await new Promise<void>((resolve) => {
        none.resume();
        none.once("end", () => resolve());
      });
      none.destroy();
    });
  });
}
