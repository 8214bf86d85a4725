/**
 * An exec issued as soon as a sandbox starts reaches its command. crun reports "running" before
 * the container's process has executed its program, and `crun exec` into a user namespace fails
 * in that window ("setns(pid=N, CLONE_*): Operation not permitted"); under load CI lost an exec
 * this way. A startContainer hook (run inside the container after crun reports "running", before
 * the program) holds the window open for a second, so the race is lost every time without the
 * driver's readiness check. runsc is left out: its state names the sandbox process, not the
 * container's, and exec goes through its own sentry.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBusyboxRootfs } from "../../src/runtime/busybox.js";
import type { OciConfig } from "../../src/runtime/oci/bundle.js";
import { CrunDriver } from "../../src/runtime/oci/crun-driver.js";
import { RuncDriver } from "../../src/runtime/oci/runc-driver.js";
import type { RuntimeDriver, SandboxSpec } from "../../src/runtime/runtime-driver.js";
import { mountRootfs, unmount } from "../../src/sys/overlay-mount.js";

/** Keeps the container's process in the runtime for a second after "running". */
function holdBeforeProgram(config: OciConfig): void {
  Object.assign(config, {
    hooks: { ...config.hooks, startContainer: [{ path: "/bin/sleep", args: ["sleep", "1"] }] },
  });
}

class SlowStartCrun extends CrunDriver {
  protected override adjustConfig(config: OciConfig, spec: SandboxSpec): void {
    super.adjustConfig(config, spec);
    holdBeforeProgram(config);
  }
}

class SlowStartRunc extends RuncDriver {
  protected override adjustConfig(config: OciConfig): void {
    super.adjustConfig(config);
    holdBeforeProgram(config);
  }
}

function text(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let s = "";
    stream.on("data", (b: Buffer) => {
      s += b.toString();
    });
    stream.once("close", () => resolve(s));
  });
}

const drivers: Array<[string, (stateDir: string) => RuntimeDriver]> = [
  ["crun", (stateDir) => new SlowStartCrun({ stateDir })],
  ["runc", (stateDir) => new SlowStartRunc({ stateDir })],
];

for (const [name, make] of drivers) {
  describe(`exec right after start: ${name}`, () => {
    let root = "";
    let base = "";

    beforeAll(async () => {
      root = await mkdtemp(path.join(tmpdir(), `exec-after-start-${name}-`));
      await chmod(root, 0o711);
      base = path.join(root, "layers", `base-${"0".repeat(35)}`);
      await buildBusyboxRootfs(base);
    });

    afterAll(async () => {
      if (root !== "") await rm(root, { recursive: true, force: true });
    });

    it("reaches the command even while the container's process is still the runtime", async () => {
      const driver = make(path.join(root, "state"));
      const dir = path.join(root, "run");
      const merged = path.join(dir, "merged");
      const lease = driver.userRange?.() ?? null;
      await mountRootfs({
        lowers: [base],
        upper: path.join(dir, "upper"),
        work: path.join(dir, "work"),
        target: merged,
        ...(lease === null ? {} : { idmap: lease.range }),
      });
      const sandbox = await driver
        .start({
          id: `eas${process.pid}-${name}`,
          rootfs: merged,
          bundleDir: path.join(dir, "bundle"),
          hostname: "sandbox",
          network: "none",
          limits: { memoryBytes: 256 * 1024 * 1024, pids: 256 },
          stdin: "null",
          process: { args: ["/bin/sleep", "60"], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
          ...(lease === null ? {} : { users: lease.range }),
        })
        .catch(async (e: unknown) => {
          await unmount(merged).catch(() => undefined);
          lease?.release();
          throw e;
        });
      try {
        const h = await sandbox.exec({
          args: ["/bin/echo", "hi"],
          env: ["PATH=/bin"],
          cwd: "/",
          uid: 0,
          gid: 0,
        });
        const [out, err, st] = await Promise.all([text(h.stdout), text(h.stderr), h.wait()]);
        expect({ st: { exitCode: st.exitCode, signal: st.signal }, out, err }).toEqual({
          st: { exitCode: 0, signal: -1 },
          out: "hi\n",
          err: "",
        });
      } finally {
        await sandbox.destroy();
        await unmount(merged).catch(() => undefined);
        lease?.release();
      }
    });
  });
}
