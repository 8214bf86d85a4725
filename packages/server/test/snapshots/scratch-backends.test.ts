/**
 * The scratch backends on their own (snapshots/overlay/scratch): each one's cap holds while writing.
 * The project-quota backend needs a kernel with quota formats for ext4 (CONFIG_QFMT_V2) or XFS
 * quotas (CONFIG_XFS_QUOTA); on kernels without (like our CI VMs, see /proc/config.gz) its
 * positive test cannot run, and the test checks the probe says so instead of picking it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { LoopScratch } from "../../src/snapshots/overlay/scratch/loop-scratch.js";
import { ProjectQuotaScratch } from "../../src/snapshots/overlay/scratch/project-quota-scratch.js";
import { probeProjectQuota, selectScratch } from "../../src/snapshots/overlay/scratch/select-scratch.js";
import { mounter } from "../../src/sys/mount.js";
import { nativeSys } from "../../src/sys/native-sys.js";

const MiB = 1024 * 1024;
const logger = createLogger("silent");

function kernelHasProjectQuota(): boolean {
  const cfg = existsSync("/proc/config.gz") ? gunzipSync(readFileSync("/proc/config.gz")).toString() : "";
  return /^CONFIG_QFMT_V2=y/m.test(cfg);
}

/** Counts this process's mounts below `dir` (mountinfo), to check nothing is left mounted. */
function mountsBelow(dir: string): number {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => (l.split(" ")[4] ?? "").startsWith(`${dir}/`)).length;
}

describe("loop scratch", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-loopscratch-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(["native", "cli"] as const)(
    "(%s mounter) writes past the cap fail with ENOSPC; a returned filesystem is reused empty; close unmounts all",
    async (backend) => {
      const loop = new LoopScratch({ dir, logger, idleMax: 2, mounter: mounter(backend) });
      try {
        const cap = 24 * MiB;
        // The default cap: the one size kept ready without being asked for before.
        loop.warm(cap);
        const a = await loop.acquire(dir, cap);
        await writeFile(join(a.upper, "ok"), Buffer.alloc(cap - 2 * MiB));
        await expect(writeFile(join(a.upper, "over"), Buffer.alloc(4 * MiB))).rejects.toMatchObject({
          code: "ENOSPC",
        });
        expect(await a.reachedCap()).toBe(true);
        const mountOfA = statSync(a.upper).dev;
        await a.release();
        await a.release();
        // Two runs at once: the one warmed in the background and the one given back, emptied.
        const b = await loop.acquire(dir, cap);
        const c = await loop.acquire(dir, cap);
        try {
          expect([statSync(b.upper).dev, statSync(c.upper).dev]).toContain(mountOfA);
          for (const s of [b, c]) {
            expect(existsSync(join(s.upper, "ok"))).toBe(false);
            expect(await s.reachedCap()).toBe(false);
          }
        } finally {
          await b.release();
          await c.release();
        }
      } finally {
        await loop.close();
      }
      expect(mountsBelow(dir)).toBe(0);
    },
  );

  it("a tenant's one-off cap is neither kept nor prepared again (no pool of odd sizes)", async () => {
    const loop = new LoopScratch({ dir, logger, idleMax: 2 });
    try {
      const oneOff = 17 * MiB + 4096;
      const s = await loop.acquire(dir, oneOff);
      await s.release();
      // Nothing left mounted: the run's filesystem went with it and none was made for the size.
      expect(mountsBelow(dir)).toBe(0);
    } finally {
      await loop.close();
    }
    expect(mountsBelow(dir)).toBe(0);
  });
});

describe("project-quota scratch", () => {
  let root: string;
  let mnt: string;
  let mounted = false;
  const supported = kernelHasProjectQuota();

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "contree-prjquota-"));
    mnt = join(root, "mnt");
    mkdirSync(mnt);
  });
  afterAll(async () => {
    if (mounted) execFileSync("umount", [mnt]);
    await rm(root, { recursive: true, force: true });
  });

  it("the probe refuses a data filesystem without project quotas (ext4 as on this host)", async () => {
    const p = await probeProjectQuota(root);
    expect(p.ok).toBe(false);
    expect(p.detail).toMatch(/no usable project quotas/);
    const s = await selectScratch({
      mode: "auto",
      runsDir: root,
      layersDir: root,
      tmpfsMaxBytes: 0,
      logger,
    });
    try {
      expect(s.backend.name).not.toBe("project-quota");
      expect(s.probes[0]?.ok).toBe(false);
    } finally {
      await s.backend.close();
    }
  });

  // Where the kernel has no quota formats the positive test cannot run; what must hold then is
  // that such a filesystem is refused (so auto never believes in quotas it does not have).
  if (!supported)
    it("this kernel has no quota formats: a prjquota mount is refused", async () => {
      const img = join(root, "noprj.img");
      await writeFile(img, "");
      await truncate(img, 64 * MiB);
      execFileSync("mkfs.ext4", ["-q", "-F", "-O", "quota,project", img]);
      expect(() => execFileSync("mount", ["-o", "loop,prjquota", img, mnt], { stdio: "pipe" })).toThrow();
    });

  if (supported)
    it("on ext4 with the project feature mounted prjquota: EDQUOT at the cap, commit by rename", async () => {
      const img = join(root, "prj.img");
      await writeFile(img, "");
      await truncate(img, 256 * MiB);
      execFileSync("mkfs.ext4", ["-q", "-F", "-O", "quota,project", img]);
      execFileSync("mount", ["-o", "loop,prjquota", img, mnt]);
      mounted = true;
      const runs = join(mnt, "runs");
      const layers = join(mnt, "layers");
      mkdirSync(runs);
      mkdirSync(layers);
      expect((await probeProjectQuota(runs)).ok).toBe(true);
      const sys = nativeSys();
      if (sys === null) throw new Error("the native addon is required");
      const q = new ProjectQuotaScratch(sys, runs, layers, logger);
      const cap = 16 * MiB;
      const s = await q.acquire(join(runs, "r1"), cap);
      expect(s.commit).toBe("rename");
      await writeFile(join(s.upper, "ok"), Buffer.alloc(cap - 2 * MiB));
      await expect(writeFile(join(s.upper, "over"), Buffer.alloc(4 * MiB))).rejects.toMatchObject({
        code: "EDQUOT",
      });
      expect(await s.reachedCap()).toBe(true);
      // The committed layer keeps its project id: the next run gets another one, with its full cap.
      execFileSync("mv", [s.upper, join(layers, "l1")]);
      await s.release();
      const s2 = await q.acquire(join(runs, "r2"), cap);
      await writeFile(join(s2.upper, "ok"), Buffer.alloc(cap - 2 * MiB));
      await s2.release();
    });
});
