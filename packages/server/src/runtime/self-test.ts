/**
 * The start-up check every driver runs: a real sandbox over a busybox rootfs must echo, then
 * run the userland probe (native/probe.c): the system calls, with the flags, that glibc and
 * coreutils make. A sandbox that runs busybox but answers `statx(…, AT_NO_AUTOMOUNT, …)` with
 * EINVAL breaks `ls` in every Debian-based image, so it fails here.
 */

import { existsSync } from "node:fs";
import { chmod, copyFile, mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { finished } from "node:stream/promises";
import { PROBE } from "../sys/native-sys.js";
import { mountRootfs, unmount } from "../sys/overlay-mount.js";
import { buildBusyboxRootfs } from "./busybox.js";
import type { RuntimeDriver, SelfTestOptions, SelfTestResult, UserRangeLease } from "./runtime-driver.js";

const MARK = "contree-selftest-ok";
const PROBE_IN_SANDBOX = "/.contree-probe";
const PROBE_OK = "contree-probe ok";
const PROBE_FAILED = /^contree-probe failed: (.*)$/m;
const PROBE_FAIL_LINE = /^(\S+) FAIL \S+$/gm;

/** What a kernel answers when it cannot give overlayfs idmapped layers. */
const IDMAP_REFUSED = new Set(["EINVAL", "EOPNOTSUPP", "EOVERFLOW", "ENOSYS"]);
const IDMAP_REFUSED_REASON = "the kernel refused the idmapped overlay mount";

function errnoCode(e: unknown): string | undefined {
  const c = e instanceof Error ? (e.cause ?? e) : e;
  const code = typeof c === "object" && c !== null ? (c as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

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
    if (!existsSync(PROBE))
      return { ok: false, reason: "the userland probe (native/probe.c) is not built: run `npm run build`" };
    let rootfs = path.join(dir, "rootfs");
    await buildBusyboxRootfs(rootfs);
    await copyFile(PROBE, path.join(rootfs, PROBE_IN_SANDBOX));
    // Mounted as every run's rootfs is (a writable overlay, idmapped in a user namespace), so a
    // kernel that cannot mount it fails here and not at the first run.
    lease = driver.userRange?.() ?? null;
    const target = path.join(dir, "merged");
    try {
      await mountRootfs({
        lowers: [rootfs],
        upper: path.join(dir, "rw", "upper"),
        work: path.join(dir, "rw", "work"),
        target,
        ...(lease === null ? {} : { idmap: lease.range }),
      });
    } catch (e) {
      const code = errnoCode(e);
      if (lease !== null && code !== undefined && IDMAP_REFUSED.has(code))
        return { ok: false, reason: `${IDMAP_REFUSED_REASON} (${code})`, idmapRefused: true };
      throw e;
    }
    merged = target;
    rootfs = merged;
    sandbox = await driver.start(
      {
        id,
        rootfs,
        bundleDir: path.join(dir, "bundle"),
        process: {
          args: ["/bin/sh", "-c", `echo ${MARK} && exec ${PROBE_IN_SANDBOX}`],
          env: ["PATH=/bin"],
          cwd: "/",
          uid: 0,
          gid: 0,
        },
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
    // The exit can be reported before the pipes are drained: read the output to its end too.
    const ended = (s: NodeJS.ReadableStream) => finished(s).catch(() => undefined);
    const exited = Promise.all([sandbox.wait(), ended(sandbox.stdout), ended(sandbox.stderr)]).then(
      ([r]) => r,
    );
    const res = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    if (res === "timeout") return { ok: false, reason: `no exit within ${timeoutMs} ms` };
    const out = Buffer.concat(chunks).toString();
    const failed = PROBE_FAILED.exec(out);
    if (out.includes(MARK) && failed !== null) {
      return {
        ok: false,
        reason: `glibc/coreutils userland would fail: ${failed[1]}`,
        failedChecks: [...out.matchAll(PROBE_FAIL_LINE)].map((m) => m[1] ?? ""),
      };
    }
    if (res.exitCode !== 0 || !out.includes(MARK) || !out.includes(PROBE_OK)) {
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
