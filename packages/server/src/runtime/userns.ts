/**
 * Host id ranges for sandboxes in a user namespace. Every live sandbox gets its own range of
 * 65,536 host uids/gids (container id N = host id base+N), never shared with another sandbox,
 * so that even a process that escaped its namespaces cannot signal, ptrace or share per-user
 * kernel limits (RLIMIT_NPROC, inotify, keys) with another tenant's processes: those checks
 * compare host uids. One range for all would save nothing measurable (the per-run cost is the
 * idmapped mount, which every run pays anyway) and would give up that property.
 *
 * Ranges start at 2^28, far above system and login accounts and the usual /etc/subuid
 * allotments. A range is held by an exclusive flock on `/run/contree-userns/<slot>`: servers on
 * one host (each with its own data dir) never hand out the same range, and the kernel drops the
 * lock when its holder dies, so a crash leaves no stale claim. A sandbox's watchdog inherits the
 * lock fd (a flock lasts while any fd of its open file is open): a sandbox that outlives a dead
 * server keeps its range claimed until the watchdog has seen it end or killed it.
 */
import { closeSync, mkdirSync } from "node:fs";
import path from "node:path";
import { resourceExhausted } from "../core/errors.js";
import type { IdRange } from "../sys/mount.js";
import { nativeSys } from "../sys/native-sys.js";

export const RANGE_SIZE = 65_536;
export const FIRST_HOST_ID = 2 ** 28;
/** At most this many sandboxes in user namespaces at once on one host. */
export const SLOTS = 4096;
export const LOCK_DIR = "/run/contree-userns";

export interface UserRangeLease {
  readonly range: IdRange;
  /** Frees the range; call once every process of the sandbox is gone. Idempotent. */
  release(): void;
}

let next = Math.floor(Math.random() * SLOTS);
/** Lock dirs made by this process: one mkdir per dir, not one per run. */
const madeDirs = new Set<string>();
/** Lock fd of each range held by this process, by its first host id. */
const lockFds = new Map<number, number>();

/**
 * The lock fd of a range this process holds, for a helper that must keep the range claimed
 * while the sandbox may outlive the server (the watchdog inherits it), or undefined.
 */
export function userRangeLockFd(range: IdRange): number | undefined {
  return lockFds.get(range.hostId);
}

/** Claims a free range (needs the native addon: Node has no flock). */
export function leaseUserRange(lockDir = LOCK_DIR): UserRangeLease {
  const sys = nativeSys();
  if (sys === null) throw new Error("user ranges need the native addon");
  if (!madeDirs.has(lockDir)) {
    mkdirSync(lockDir, { recursive: true, mode: 0o700 });
    madeDirs.add(lockDir);
  }
  for (let i = 0; i < SLOTS; i++) {
    const slot = next;
    next = (next + 1) % SLOTS;
    const fd = sys.tryLock(path.join(lockDir, String(slot)));
    if (fd < 0) continue;
    let held = true;
    const range = { hostId: FIRST_HOST_ID + slot * RANGE_SIZE, size: RANGE_SIZE };
    lockFds.set(range.hostId, fd);
    return {
      range,
      release() {
        if (!held) return;
        held = false;
        lockFds.delete(range.hostId);
        closeSync(fd);
      },
    };
  }
  throw resourceExhausted("no free user id range for a sandbox");
}
