/**
 * The service-owned cgroup of one sandbox: `/<CGROUP_ROOT>/<id>`, with the runtime creating
 * its container cgroup `ctr` below it, or (crun on v1) the runtime started inside it directly
 * (joinFiles). Limits sit on our cgroup, so OOM counters and CPU/memory totals survive the
 * runtime deleting `ctr` (lab §2, §8), and kill/freeze work the same for every driver.
 *
 * Supports cgroup v1 (incl. "hybrid", where cgroup2 at /sys/fs/cgroup/unified carries no
 * resource controllers) and pure cgroup v2. Only v1/hybrid is exercised on our machines.
 */
import {
  accessSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { internal } from "../core/errors.js";
import { v1DeviceAllowRules } from "./devices.js";
import { CGROUP_ROOT, type ResourceStats, type SandboxLimits } from "./runtime-driver.js";

type CgroupMode = "v1" | "hybrid" | "v2";

interface CgroupMount {
  dir: string;
  version: 1 | 2;
  /** v1 controllers (and `name=` options) of this hierarchy. */
  controllers: string[];
}

/** Mounted cgroup hierarchies as this process's mount namespace sees them. */
export function cgroupMounts(): CgroupMount[] {
  const info = readFileSync("/proc/self/mountinfo", "utf8");
  const mounts: CgroupMount[] = [];
  for (const line of info.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    const dir = left[4];
    const fstype = right[0];
    if (dir === undefined) continue;
    if (fstype === "cgroup2") mounts.push({ dir, version: 2, controllers: [] });
    else if (fstype === "cgroup") {
      const opts = (right[2] ?? "").split(",");
      mounts.push({
        dir,
        version: 1,
        controllers: opts.filter((x) => x !== "rw" && x !== "ro" && x !== "relatime"),
      });
    }
  }
  return mounts;
}

/**
 * "hybrid" means v1 controllers plus a cgroup2 mount that has controllers enabled: crun refuses
 * to run there ("cgroups in hybrid mode not supported"). A cgroup2 mount without controllers,
 * or none at all, is plain v1.
 */
export function detectCgroupMode(mounts = cgroupMounts()): CgroupMode {
  const v1 = mounts.some((m) => m.version === 1 && m.controllers.some((c) => !c.startsWith("name=")));
  const v2 = mounts.find((m) => m.version === 2);
  if (!v1) return "v2";
  if (v2 === undefined) return "v1";
  try {
    const ctl = readFileSync(path.join(v2.dir, "cgroup.controllers"), "utf8").trim();
    return ctl === "" ? "v1" : "hybrid";
  } catch {
    return "v1";
  }
}

const PERIOD_US = 100_000;
/** v1 hierarchies a sandbox gets a cgroup in (cpu and cpuacct are usually one mount). */
const V1_CONTROLLERS = ["memory", "pids", "cpu", "cpuacct", "freezer", "blkio"];

/**
 * A throttle far above any device (1 PB/s). v1 blkio counts a device's I/O only while some
 * cgroup has a throttle rule on it (lab §8); the sandbox's own rule turns its counters on
 * without limiting anything. v1 charges a write to the cgroup of the task that submits it: a
 * sandbox's direct I/O and the dirty pages its own fsync writes back, never pages the kernel's
 * flushers write back (on a sync by anyone, e.g. any overlay unmount; docs/resources.md).
 */
const NO_OP_BPS = "1000000000000000";

/** Attached block devices ("MAJ:MIN"), from /proc/partitions; whole disks and partitions alike. */
function blockDevices(): string[] {
  try {
    return readFileSync("/proc/partitions", "utf8")
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length === 4 && /^\d+$/.test(f[0] ?? "") && /^\d+$/.test(f[1] ?? ""))
      .map((f) => `${f[0]}:${f[1]}`);
  } catch {
    return [];
  }
}

/** Read/write bytes or ops summed over devices, from a v1 blkio `…_recursive` file. */
function sumBlkio(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split("\n")) {
    const [, op, n] = line.split(" ");
    if (op === "Read") read += Number(n) || 0;
    else if (op === "Write") write += Number(n) || 0;
  }
  return { read, write };
}

/** rbytes/wbytes/rios/wios summed over devices, from a v2 `io.stat`. */
function sumIoStat(text: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    for (const kv of line.split(" ").slice(1)) {
      const [k, v] = kv.split("=");
      if (k !== undefined && v !== undefined) sums.set(k, (sums.get(k) ?? 0) + (Number(v) || 0));
    }
  }
  return sums;
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, "utf8");
  } catch {
    return null;
  }
}

/*
 * cgroupfs files live in kernel memory: reads, writes, mkdir and rmdir there never wait on a
 * disk, so the helpers below use sync calls (microseconds each) rather than a thread-pool round
 * trip per file, which added milliseconds to every sandbox start and stop.
 */

function tryWrite(file: string, data: string): void {
  try {
    writeFileSync(file, data);
  } catch {
    // optional knob absent on this kernel
  }
}

async function hostOomKills(): Promise<number> {
  return (await readKeyed("/proc/vmstat")).get("oom_kill") ?? 0;
}

async function readNum(file: string): Promise<number> {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}

async function readKeyed(file: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  try {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const [k, v] = line.trim().split(/\s+/);
      if (k !== undefined && v !== undefined) m.set(k, Number(v));
    }
  } catch {
    // absent on this kernel: figures stay 0
  }
  return m;
}

async function exists(p: string): Promise<boolean> {
  try {
    accessSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Every pid in `dir` and its descendants (cgroup.procs of each level). */
async function subtreePids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let text = "";
    try {
      text = readFileSync(path.join(d, "cgroup.procs"), "utf8");
    } catch {
      continue;
    }
    for (const s of text.split("\n")) if (s !== "") pids.push(Number(s));
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      continue;
    }
    for (const e of entries) stack.push(path.join(d, e));
  }
  return pids;
}

/** rmdir a cgroup subtree, deepest first. Returns false if something is still busy. */
async function removeTree(dir: string): Promise<boolean> {
  let ok = true;
  let children: string[] = [];
  try {
    children = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return true;
  }
  for (const c of children) ok = (await removeTree(path.join(dir, c))) && ok;
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") ok = false;
  }
  return ok;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SandboxCgroup {
  readonly rel: string;
  /** What the OCI spec's `linux.cgroupsPath` gets. */
  readonly ociPath: string;
  private readonly mounts: CgroupMount[];
  private readonly mode: CgroupMode;

  private constructor(id: string, mounts: CgroupMount[]) {
    this.rel = path.join(CGROUP_ROOT, id);
    this.ociPath = `/${this.rel}/ctr`;
    this.mounts = mounts;
    this.mode = detectCgroupMode(mounts);
  }

  private v1(controller: string): string | null {
    const m = this.mounts.find((x) => x.version === 1 && x.controllers.includes(controller));
    return m === undefined ? null : path.join(m.dir, this.rel);
  }

  private v2(): string | null {
    const m = this.mounts.find((x) => x.version === 2);
    return m === undefined ? null : path.join(m.dir, this.rel);
  }

  /** Device rules are ours (see create()). */
  private deviceRules = false;
  /** Char devices allowed beyond the container set (the runtime's own, e.g. kvm for gVisor). */
  private extraDevices: ReadonlyArray<readonly [number, number]> = [];

  private v1Controllers(): string[] {
    return this.deviceRules ? [...V1_CONTROLLERS, "devices"] : V1_CONTROLLERS;
  }

  /** Memory limit we set (0 = unknown, e.g. reclaim). */
  private memoryLimit = 0;
  /** Host-wide OOM kill count when the sandbox was created (cgroup v1 fallback). */
  private hostOomBaseline = 0;

  /**
   * `deviceRules`: also write the device allow-list on this cgroup (cgroup v1). For runtimes
   * started inside it that do not manage cgroups (crun --cgroup-manager=disabled), and for runsc,
   * which ignores the OCI device rules (its sandbox and gofer start under ours, see
   * deviceJoinFiles). runc puts its own, wider defaults on its child cgroup (it adds
   * /dev/net/tun) and fails under ours. `extraDevices`: char devices the runtime's own processes
   * open on the host.
   */
  static async create(
    id: string,
    limits: SandboxLimits,
    o: { deviceRules?: boolean; extraDevices?: ReadonlyArray<readonly [number, number]> } = {},
  ): Promise<SandboxCgroup> {
    const cg = new SandboxCgroup(id, cgroupMounts());
    cg.deviceRules = o.deviceRules === true;
    cg.extraDevices = o.extraDevices ?? [];
    cg.memoryLimit = limits.memoryBytes;
    cg.hostOomBaseline = await hostOomKills();
    try {
      if (cg.mode === "v2") await cg.createV2(limits);
      else await cg.createV1(limits);
    } catch (e) {
      await cg.remove();
      throw internal("cannot create sandbox cgroup", { cause: e });
    }
    return cg;
  }

  private async createV1(limits: SandboxLimits): Promise<void> {
    for (const c of this.v1Controllers()) {
      const d = this.v1(c);
      if (d !== null) mkdirSync(d, { recursive: true });
    }
    // Deny every device but the few a userland needs: for crun started inside our cgroups
    // (joinFiles) the only device rules there are.
    const dev = this.deviceRules ? this.v1("devices") : null;
    if (dev !== null) {
      writeFileSync(path.join(dev, "devices.deny"), "a");
      for (const rule of v1DeviceAllowRules(this.extraDevices))
        writeFileSync(path.join(dev, "devices.allow"), rule);
    }
    const mem = this.v1("memory");
    if (mem !== null) {
      writeFileSync(path.join(mem, "memory.limit_in_bytes"), String(limits.memoryBytes));
      // No swap beyond the memory limit (only when the kernel accounts swap).
      const memsw = path.join(mem, "memory.memsw.limit_in_bytes");
      if (await exists(memsw)) writeFileSync(memsw, String(limits.memoryBytes));
    }
    const pids = this.v1("pids");
    if (pids !== null) writeFileSync(path.join(pids, "pids.max"), String(limits.pids));
    const blkio = this.v1("blkio");
    if (blkio !== null) {
      // A partition or a device without a queue refuses a rule: counting is best effort.
      for (const dev of blockDevices())
        tryWrite(path.join(blkio, "blkio.throttle.write_bps_device"), `${dev} ${NO_OP_BPS}`);
      for (const dev of blockDevices())
        tryWrite(path.join(blkio, "blkio.throttle.read_bps_device"), `${dev} ${NO_OP_BPS}`);
    }
    const cpu = this.v1("cpu");
    if (cpu !== null && limits.cpuQuota !== undefined) {
      writeFileSync(path.join(cpu, "cpu.cfs_period_us"), String(PERIOD_US));
      writeFileSync(
        path.join(cpu, "cpu.cfs_quota_us"),
        String(Math.max(1000, Math.round(limits.cpuQuota * PERIOD_US))),
      );
    }
  }

  /**
   * The cgroup.procs files a process writes itself into to be inside this sandbox's cgroups
   * (and so under its limits, accounting and device rules) before it runs the runtime. Only
   * for plain v1: on v2 the device rules are eBPF programs that the runtime attaches itself.
   */
  joinFiles(): string[] | null {
    if (this.mode !== "v1" || !this.deviceRules) return null;
    const dirs = new Set<string>();
    for (const c of this.v1Controllers()) {
      const d = this.v1(c);
      if (d === null) return null;
      dirs.add(d);
    }
    return [...dirs].map((d) => path.join(d, "cgroup.procs"));
  }

  /**
   * Only the devices cgroup's cgroup.procs: a runtime that manages the other controllers itself
   * but leaves devices open (runsc) starts in it, so its sandbox and gofer (and anything they
   * fork) can open no host device beyond the allow-list. v1 and hybrid (the devices controller
   * is a v1 one there); null on pure v2, where device rules are eBPF programs.
   */
  deviceJoinFiles(): string[] | null {
    if (this.mode === "v2" || !this.deviceRules) return null;
    const d = this.v1("devices");
    return d === null ? null : [path.join(d, "cgroup.procs")];
  }

  private async createV2(limits: SandboxLimits): Promise<void> {
    const leaf = this.v2();
    const root = this.mounts.find((x) => x.version === 2)?.dir;
    if (leaf === null || root === undefined) throw new Error("no cgroup2 mount");
    // Controllers must be delegated down every level we own.
    let dir = root;
    for (const part of this.rel.split("/")) {
      const want = ["+memory", "+pids", "+cpu", "+io"];
      const ctl = path.join(dir, "cgroup.subtree_control");
      for (const w of want) tryWrite(ctl, w);
      dir = path.join(dir, part);
      mkdirSync(dir, { recursive: true });
    }
    tryWrite(path.join(leaf, "cgroup.subtree_control"), "+memory +pids +cpu");
    tryWrite(path.join(leaf, "cgroup.subtree_control"), "+io");
    writeFileSync(path.join(leaf, "memory.max"), String(limits.memoryBytes));
    tryWrite(path.join(leaf, "memory.swap.max"), "0");
    writeFileSync(path.join(leaf, "pids.max"), String(limits.pids));
    if (limits.cpuQuota !== undefined) {
      writeFileSync(
        path.join(leaf, "cpu.max"),
        `${Math.max(1000, Math.round(limits.cpuQuota * PERIOD_US))} ${PERIOD_US}`,
      );
    }
  }

  async stats(): Promise<ResourceStats> {
    if (this.mode === "v2") {
      const d = this.v2() as string;
      const cpu = await readKeyed(path.join(d, "cpu.stat"));
      const events = await readKeyed(path.join(d, "memory.events"));
      const current = await readNum(path.join(d, "memory.current"));
      const peakFile = path.join(d, "memory.peak");
      const io = await readText(path.join(d, "io.stat"));
      const sums = io === null ? null : sumIoStat(io);
      return {
        ...(sums === null
          ? {}
          : {
              ioReadBytes: sums.get("rbytes") ?? 0,
              ioWriteBytes: sums.get("wbytes") ?? 0,
              ioReadOps: sums.get("rios") ?? 0,
              ioWriteOps: sums.get("wios") ?? 0,
            }),
        cpuUserNs: (cpu.get("user_usec") ?? 0) * 1000,
        cpuSystemNs: (cpu.get("system_usec") ?? 0) * 1000,
        cpuTotalNs: (cpu.get("usage_usec") ?? 0) * 1000,
        memoryPeakBytes: (await exists(peakFile)) ? await readNum(peakFile) : current,
        memoryCurrentBytes: current,
        pidsCurrent: await readNum(path.join(d, "pids.current")),
        oomKills: events.get("oom_kill") ?? 0,
      };
    }
    const acct = this.v1("cpuacct");
    const mem = this.v1("memory");
    const pids = this.v1("pids");
    const oom =
      mem === null ? new Map<string, number>() : await readKeyed(path.join(mem, "memory.oom_control"));
    const peak = mem === null ? 0 : await readNum(path.join(mem, "memory.max_usage_in_bytes"));
    let oomKills = oom.get("oom_kill") ?? 0;
    // v1 counts an OOM kill only in the victim's own cgroup (the runtime's `ctr`, deleted with the
    // container). Memory pinned at our limit plus a host-wide OOM kill since we started is that event.
    if (oomKills === 0 && this.memoryLimit > 0 && peak >= this.memoryLimit * 0.95) {
      oomKills = Math.max(0, (await hostOomKills()) - this.hostOomBaseline);
    }
    const blkio = this.v1("blkio");
    const bytes =
      blkio === null ? null : await readText(path.join(blkio, "blkio.throttle.io_service_bytes_recursive"));
    const ops =
      blkio === null ? null : await readText(path.join(blkio, "blkio.throttle.io_serviced_recursive"));
    const b = bytes === null ? null : sumBlkio(bytes);
    const o = ops === null ? null : sumBlkio(ops);
    return {
      ...(b === null || o === null
        ? {}
        : { ioReadBytes: b.read, ioWriteBytes: b.write, ioReadOps: o.read, ioWriteOps: o.write }),
      cpuUserNs: acct === null ? 0 : await readNum(path.join(acct, "cpuacct.usage_user")),
      cpuSystemNs: acct === null ? 0 : await readNum(path.join(acct, "cpuacct.usage_sys")),
      cpuTotalNs: acct === null ? 0 : await readNum(path.join(acct, "cpuacct.usage")),
      memoryPeakBytes: peak,
      memoryCurrentBytes: mem === null ? 0 : await readNum(path.join(mem, "memory.usage_in_bytes")),
      pidsCurrent: pids === null ? 0 : await readNum(path.join(pids, "pids.current")),
      oomKills,
    };
  }

  /** The directory whose subtree holds every process of the sandbox (for the watchdog). */
  taskDir(): string | null {
    return this.mode === "v2" ? this.v2() : (this.v1("pids") ?? this.v1("memory"));
  }

  /** The v1 freezer directory that freezes the sandbox before a kill, or null (v2, or none). */
  freezerDir(): string | null {
    return this.mode === "v2" ? null : this.v1("freezer");
  }

  /** Host pids of every process in the sandbox. */
  async pids(): Promise<number[]> {
    const d = this.taskDir();
    return d === null ? [] : subtreePids(d);
  }

  /**
   * Signals everything in the sandbox. The subtree is frozen first so nothing can fork
   * between listing and signalling; SIGKILL is delivered to frozen tasks.
   */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.mode === "v2" && signal === "SIGKILL") {
      const d = this.v2() as string;
      if (await exists(path.join(d, "cgroup.kill"))) {
        tryWrite(path.join(d, "cgroup.kill"), "1");
        return;
      }
    }
    const freezer = this.freezerDir();
    const frozen = freezer !== null && (await this.freeze(freezer));
    try {
      for (const pid of await this.pids()) {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone
        }
      }
    } finally {
      if (frozen && freezer !== null) tryWrite(path.join(freezer, "freezer.state"), "THAWED");
    }
  }

  private async freeze(dir: string): Promise<boolean> {
    const state = path.join(dir, "freezer.state");
    try {
      await writeFile(state, "FROZEN");
      for (let i = 0; i < 50; i++) {
        if ((await readFile(state, "utf8")).trim() === "FROZEN") return true;
        await sleep(2);
      }
    } catch {
      return false;
    }
    return true;
  }

  /** Kills leftovers and removes the subtree from every hierarchy. Idempotent. */
  async remove(): Promise<void> {
    const dirs = this.mounts.map((m) => path.join(m.dir, this.rel));
    // Where the hybrid cgroup2 mount is hidden under a tmpfs (scripts/in-private-mount-ns.sh),
    // crun still creates its "unified" directories there: plain files, removed like files.
    const hidden = hiddenUnifiedTmpfs();
    if (hidden !== null) await rm(path.join(hidden, this.rel), { recursive: true, force: true });
    for (let attempt = 0; attempt < 20; attempt++) {
      let ok = true;
      for (const d of dirs) ok = (await removeTree(d)) && ok;
      if (ok) return;
      await this.kill("SIGKILL");
      await sleep(25 * (attempt + 1));
    }
    throw internal("cannot remove sandbox cgroup");
  }

  /** Ids that have a service-owned cgroup in any hierarchy (for reclaim). */
  static listIds(): string[] {
    const ids = new Set<string>();
    for (const m of cgroupMounts()) {
      const root = path.join(m.dir, CGROUP_ROOT);
      if (!existsSync(root)) continue;
      try {
        for (const e of readdirSyncDirs(root)) ids.add(e);
      } catch {
        // raced with removal
      }
    }
    return [...ids];
  }

  static forId(id: string): SandboxCgroup {
    return new SandboxCgroup(id, cgroupMounts());
  }
}

/** Host directory of an OCI `cgroupsPath` in the v1 devices hierarchy (null without one). */
export function v1DevicesDir(ociPath: string): string | null {
  if (detectCgroupMode() === "v2") return null;
  const m = cgroupMounts().find((x) => x.version === 1 && x.controllers.includes("devices"));
  return m === undefined ? null : path.join(m.dir, ociPath);
}

/** The tmpfs covering a hidden hybrid cgroup2 mount in this mount namespace, if any. */
function hiddenUnifiedTmpfs(): string | null {
  const info = readFileSync("/proc/self/mountinfo", "utf8");
  for (const line of info.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (f[4] === "/sys/fs/cgroup/unified" && sep > 0 && f[sep + 1] === "tmpfs") return f[4];
  }
  return null;
}

function readdirSyncDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}
