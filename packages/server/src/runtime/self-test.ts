/** The start-up check every driver runs: a real sandbox over a busybox rootfs must echo. */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { buildBusyboxRootfs } from "./busybox.js";
import { mountRootfs, unmount } from "./rootfs.js";
import type { RuntimeDriver, SelfTestOptions, SelfTestResult, UserRangeLease } from "./runtime-driver.js";

const MARK = "contree-selftest-ok";

export async function selfTestSandbox(
  driver: RuntimeDriver,
  o: SelfTestOptions,
  timeoutMs = 30_000,
): Promise<SelfTestResult> {
  const dir = await mkdtemp(path.join(o.workDir, `selftest-${driver.name}-`));
  // A runtime in a user namespace reaches the rootfs as an unprivileged host uid (search only).
  await chmod(dir, 0o711);
  const id = `selftest-${driver.name}-${process.pid}-${Date.now().toString(36)}`;
  let sandbox: Awaited<ReturnType<RuntimeDriver["start"]>> | null = null;
  let lease: UserRangeLease | null = null;
  let merged: string | null = null;
  try {
    let rootfs = path.join(dir, "rootfs");
    await buildBusyboxRootfs(rootfs);
    // In a user namespace the root must be an idmapped overlay, as for every run.
    lease = driver.userRange?.() ?? null;
    if (lease !== null) {
      merged = path.join(dir, "merged");
      await mountRootfs({
        lowers: [rootfs],
        upper: path.join(dir, "rw", "upper"),
        work: path.join(dir, "rw", "work"),
        target: merged,
        idmap: lease.range,
      });
      rootfs = merged;
    }
    sandbox = await driver.start(
      {
        id,
        rootfs,
        bundleDir: path.join(dir, "bundle"),
        process: { args: ["/bin/sh", "-c", `echo ${MARK}`], env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0 },
        hostname: "selftest",
        network: "none",
        limits: { memoryBytes: 256 * 1024 * 1024, pids: 256 },
        stdin: "null",
        ...(lease === null ? {} : { users: lease.range }),
      },
      o.signal === undefined ? {} : { signal: o.signal },
    );
    const chunks: Buffer[] = [];
    const errs: Buffer[] = [];
    sandbox.stdout.on("data", (b: Buffer) => chunks.length < 64 && chunks.push(b));
    sandbox.stderr.on("data", (b: Buffer) => errs.length < 64 && errs.push(b));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), timeoutMs);
    });
    const res = await Promise.race([sandbox.wait(), timeout]);
    clearTimeout(timer);
    if (res === "timeout") return { ok: false, reason: `no exit within ${timeoutMs} ms` };
    const out = Buffer.concat(chunks).toString();
    if (res.exitCode !== 0 || !out.includes(MARK)) {
      const err = Buffer.concat(errs).toString().trim().slice(0, 400);
      return { ok: false, reason: `exit ${res.exitCode}${err === "" ? "" : `: ${err}`}` };
    }
    return { ok: true };
  } catch (e) {
    return {
      ok: false,
      reason:
        e instanceof Error
          ? `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ""}`
          : String(e),
    };
  } finally {
    await sandbox?.destroy().catch(() => undefined);
    if (merged !== null) await unmount(merged).catch(() => undefined);
    lease?.release();
    await rm(dir, { recursive: true, force: true });
  }
}
