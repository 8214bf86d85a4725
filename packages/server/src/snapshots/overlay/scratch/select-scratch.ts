import { mkdirSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../../observability/logger.js";
import { nativeSys, nativeSysUnavailableReason } from "../../../sys/native-sys.js";
import { LoopScratch } from "./loop-scratch.js";
import { PlainScratch } from "./plain-scratch.js";
import { FIRST_PROJECT_ID, ProjectQuotaScratch } from "./project-quota-scratch.js";
import { type ScratchBackend, TieredScratch } from "./scratch.js";
import { TmpfsScratch } from "./tmpfs-scratch.js";

type ScratchMode = "auto" | "project-quota" | "loop" | "plain";

interface ScratchProbe {
  name: "project-quota" | "loop";
  ok: boolean;
  detail: string;
}

interface ScratchSelection {
  backend: ScratchBackend;
  /** One sentence: which backend and why (start-up log, doctor). */
  reason: string;
  probes: ScratchProbe[];
}

interface SelectScratchOptions {
  mode: ScratchMode;
  /** The data dir's run directory (the probes write below it). */
  runsDir: string;
  layersDir: string;
  /** Caps up to this use a tmpfs when project quotas are not available (0: never). */
  tmpfsMaxBytes: number;
  /** A cap to prepare a loop filesystem for in the background (the default one). */
  warmCapBytes?: number;
  logger: Logger;
}

const PROBE_LIMIT = 1024 * 1024;

function errText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e?.message === "string" ? (e.message.split("\n")[0] ?? "") : String(err);
}

/** Does the filesystem under `runsDir` refuse a write past a project's hard limit? */
export async function probeProjectQuota(runsDir: string): Promise<ScratchProbe> {
  const sys = nativeSys();
  if (sys === null)
    return { name: "project-quota", ok: false, detail: `native addon ${nativeSysUnavailableReason()}` };
  const dir = join(runsDir, `.quota-probe-${process.pid}`);
  const id = FIRST_PROJECT_ID - 1;
  mkdirSync(dir, { recursive: true });
  try {
    sys.setProjectId(dir, id);
    sys.setProjectLimit(dir, id, PROBE_LIMIT);
    try {
      await writeFile(join(dir, "fill"), Buffer.alloc(2 * PROBE_LIMIT));
      return { name: "project-quota", ok: false, detail: "a write past the project's hard limit succeeded" };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== "EDQUOT" && code !== "ENOSPC") throw err;
    }
    return { name: "project-quota", ok: true, detail: "the data filesystem enforces project quotas" };
  } catch (err) {
    return {
      name: "project-quota",
      ok: false,
      detail: `the data filesystem has no usable project quotas (${errText(err)})`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
    try {
      sys.setProjectLimit(runsDir, id, 0);
    } catch {
      // never set
    }
  }
}

/** Can we make, mount and fill a loop-backed ext4 of a given size? */
export async function probeLoop(runsDir: string, logger: Logger): Promise<ScratchProbe> {
  const dir = join(runsDir, `.loop-probe-${process.pid}`);
  await mkdir(dir, { recursive: true });
  const loop = new LoopScratch({ dir, logger, idleMax: 0 });
  const cap = 8 * 1024 * 1024;
  try {
    const s = await loop.acquire(dir, cap);
    try {
      await writeFile(join(s.upper, "fill"), Buffer.alloc(2 * cap));
      return { name: "loop", ok: false, detail: "a write past the loop filesystem's size succeeded" };
    } catch (err) {
      if ((err as { code?: unknown }).code !== "ENOSPC") throw err;
    } finally {
      await s.release();
    }
    return { name: "loop", ok: true, detail: "loop-mounted ext4 images work (mkfs.ext4, /dev/loop-control)" };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    return { name: "loop", ok: false, detail: `loop-mounted ext4 unavailable (${errText(cause ?? err)})` };
  } finally {
    await loop.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Picks how runs' writes are capped. `auto`: project quotas where the data filesystem has them
 * (nothing cheaper: a few syscalls, commit by rename); else small caps on tmpfs and the rest on
 * per-run loop-mounted ext4 images; else (no loop devices either) plain dirs checked after the
 * run. A mode the host cannot honour is an error.
 */
export async function selectScratch(o: SelectScratchOptions): Promise<ScratchSelection> {
  const probes: ScratchProbe[] = [];
  const tiered = (large: ScratchBackend) =>
    o.tmpfsMaxBytes > 0 ? new TieredScratch(new TmpfsScratch(o.logger), o.tmpfsMaxBytes, large) : large;

  if (o.mode === "plain")
    return {
      backend: tiered(new PlainScratch()),
      reason: "configured: plain dirs, caps above the tmpfs limit are checked only after the run",
      probes,
    };
  if (o.mode === "auto" || o.mode === "project-quota") {
    const p = await probeProjectQuota(o.runsDir);
    probes.push(p);
    if (p.ok) {
      const sys = nativeSys();
      if (sys !== null)
        return {
          backend: new ProjectQuotaScratch(sys, o.runsDir, o.layersDir, o.logger),
          reason: `project quotas: ${p.detail}`,
          probes,
        };
    }
    if (o.mode === "project-quota") throw new Error(`scratch backend project-quota: ${p.detail}`);
  }
  const p = await probeLoop(o.runsDir, o.logger);
  probes.push(p);
  if (p.ok) {
    const loop = new LoopScratch({ dir: join(o.runsDir, ".scratch"), logger: o.logger });
    if (o.warmCapBytes !== undefined && o.warmCapBytes > o.tmpfsMaxBytes) loop.warm(o.warmCapBytes);
    const why = probes[0]?.name === "project-quota" && !probes[0].ok ? `${probes[0].detail}; ` : "";
    return {
      backend: tiered(loop),
      reason: `${why}caps up to ${o.tmpfsMaxBytes} bytes use a size-capped tmpfs, larger ones a loop-mounted ext4 image of the cap's size`,
      probes,
    };
  }
  if (o.mode === "loop") throw new Error(`scratch backend loop: ${p.detail}`);
  return {
    backend: tiered(new PlainScratch()),
    reason: `${probes.map((x) => x.detail).join("; ")}: caps above ${o.tmpfsMaxBytes} bytes are checked only after the run (writes are not stopped)`,
    probes,
  };
}
