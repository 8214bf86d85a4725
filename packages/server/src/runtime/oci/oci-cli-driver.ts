/**
 * Shared machinery for runtimes driven through the OCI runtime CLI (crun, runc, runsc):
 * per-sandbox cgroup and netns, bundle generation, `<runtime> run` in the foreground (the
 * runtime reaps the container and hands us its exit status, which a detached `create`+`start`
 * would lose without a subreaper shim), `exec` for extra processes and cgroup-wide kill.
 * Subclasses only say how to invoke their binary.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { readdir, rm, rmdir } from "node:fs/promises";
import { Socket } from "node:net";
import { constants } from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { cancelled, failedPrecondition, internal, invalidArgument } from "../../core/errors.js";
import { nativeSys, WATCHDOG } from "../../sys/native-sys.js";
import { canJoinCgroupsAtSpawn, launch, type Proc, type ProcExit } from "../../sys/proc.js";
import { runCommand } from "../../sys/run-command.js";
import { removeBindFiles, writeBindFile } from "../bind-files.js";
import { SandboxCgroup } from "../cgroups.js";
import { clearStaleSandboxFirewall } from "../egress-firewall.js";
import { EgressGuard } from "../egress-guard.js";
import {
  type EgressConfig,
  type EgressNetwork,
  hostDnsServers,
  inRanges,
  isBlockedAddress,
  resolvConf,
  setupEgress,
  teardownNetns,
} from "../network.js";
import {
  type DriverKind,
  type DriverName,
  type ExitStatus,
  isValidSandboxId,
  NAME_PREFIX,
  type ProcessHandle,
  type ProcessSpec,
  type ResourceStats,
  type RuntimeDriver,
  type Sandbox,
  type SandboxNetwork,
  type SandboxSpec,
  type SelfTestOptions,
  type SelfTestResult,
} from "../runtime-driver.js";
import {
  collectReport,
  initArgs,
  initBinary,
  initMount,
  parseInitReport,
  REPORT_DIR_IN_SANDBOX,
  REPORT_FD,
  type ReportCollector,
  readReportFile,
  withReport,
} from "../sandbox-init.js";
import { selfTestSandbox } from "../self-test.js";
import { userRangeLockFd } from "../userns.js";
import {
  type BundleOptions,
  type OciConfig,
  type OciProcess,
  ociConfig,
  ociProcess,
  writeJson,
} from "./bundle.js";

const NO_TERMINAL = "this sandbox cannot have a terminal (it runs without the sandbox init)";

export interface OciCliDriverOptions {
  /** Where runtime state (`--root`) lives; one subdirectory per runtime. */
  stateDir: string;
  /** Override the binary (absolute path or name on PATH). */
  binary?: string;
  /** Egress networking; resolvers default to the host's non-loopback nameservers. */
  egress?: Partial<EgressConfig>;
  /** Run commands under the sandbox init (default true; false only for A/B benchmarks). */
  sandboxInit?: boolean;
}

export interface Invocation {
  file: string;
  args: string[];
  /** argv[0] when `file` is not the program's own name (a sealed copy at /proc/self/fd/N). */
  argv0?: string;
}

/** Launch options that carry an invocation's argv[0]. */
function argv0Of(inv: Invocation): { argv0?: string } {
  return inv.argv0 === undefined ? {} : { argv0: inv.argv0 };
}

/** Built or not is fixed for the life of the process: checked once, not per run. */
const WATCHDOG_BUILT = existsSync(WATCHDOG);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The invocation run inside the given cgroups: through launch()'s cgexec helper when the native
 * addon is there, else through `sh`, whose builtin echo moves the shell itself before it execs
 * the runtime (fails closed: exit 126, nothing run).
 */
export function joiningCgroups(
  inv: Invocation,
  procs: string[],
  viaHelper = canJoinCgroupsAtSpawn(),
): Invocation & { joinCgroups?: string[] } {
  if (viaHelper) return { ...inv, joinCgroups: procs };
  if (inv.argv0 !== undefined) throw internal("cannot join cgroups for a sealed runtime without the addon");
  const script = 'for f; do shift; [ "$f" = -- ] && break; echo 0 > "$f" || exit 126; done; exec "$@"';
  return { file: "sh", args: ["-c", script, "sh", ...procs, "--", inv.file, ...inv.args] };
}

export abstract class OciCliDriver implements RuntimeDriver {
  abstract readonly name: DriverName;
  abstract readonly kind: DriverKind;
  abstract readonly isolation: string;
  protected readonly stateDir: string;
  protected readonly binary: string;
  private readonly egress: Partial<EgressConfig>;
  private readonly useInit: boolean;

  constructor(defaultBinary: string, o: OciCliDriverOptions) {
    this.useInit = o.sandboxInit !== false;
    this.stateDir = o.stateDir;
    this.binary = o.binary ?? defaultBinary;
    this.egress = o.egress ?? {};
  }

  get stateDirectory(): string {
    return this.stateDir;
  }

  /** `--root` directory of this runtime. */
  get stateRoot(): string {
    return path.join(this.stateDir, this.name);
  }

  /** Full command line for a runtime subcommand (global flags, wrappers). */
  protected abstract invocation(sub: string[], ctx: { netnsPath?: string }): Invocation;

  /** Runtime-specific bundle tweaks (e.g. runsc joins the netns itself). */
  protected bundleOptions(base: BundleOptions, _net: EgressNetwork | null): BundleOptions {
    return base;
  }

  /** Last chance to adjust the generated config for this runtime. */
  protected adjustConfig(_config: OciConfig, _spec: SandboxSpec): void {}

  /**
   * True when the runtime is started inside the sandbox's cgroups (SandboxCgroup.joinFiles) and
   * told not to manage cgroups itself; its invocation() then carries the flag that says so.
   */
  protected startsInsideCgroups(): boolean {
    return false;
  }

  /**
   * True for a runtime that ignores the OCI device rules (runsc): it starts inside the sandbox's
   * devices cgroup, with our allow-list, so nothing it or its children do opens another host device.
   */
  protected confinedToDeviceCgroup(): boolean {
    return false;
  }

  /** Char devices the runtime's own processes need on the host beyond the container set. */
  protected runtimeDevices(): ReadonlyArray<readonly [number, number]> {
    return [];
  }

  /**
   * Host-side work on the rootfs before the runtime starts (runsc: a mount point for its entry
   * point). The returned undo runs once, when the main process has exited or at destroy.
   */
  protected async prepareRootfs(_spec: SandboxSpec): Promise<(() => Promise<void>) | null> {
    return null;
  }

  /**
   * How the sandbox init (sandbox-init.ts) reports in sandbox `id`: through a pipe at the
   * runtime's fd 3 (`--preserve-fds`), or as files in a host directory bound at
   * REPORT_DIR_IN_SANDBOX (runsc, whose prepareRootfs made it). null: that sandbox runs its
   * commands without the init.
   */
  protected initReports(_id: string): InitReports | null {
    return { kind: "fd" };
  }

  /**
   * The OCI process of an extra process (`exec`) in sandbox `id`, under the init when the
   * sandbox has one (`via`, how it reports); `slot` numbers its report file.
   */
  execProcess(_id: string, p: ProcessSpec, slot: number, via: InitReports | null): OciProcess {
    const proc = ociProcess(p);
    if (via === null && p.tty !== undefined) throw failedPrecondition(NO_TERMINAL);
    if (via !== null)
      proc.args = initArgs(
        "exec",
        via.kind === "fd" ? `fd:${REPORT_FD}` : reportFileIn(`exec-${slot}`),
        proc.args,
        this.terminalOf(p),
      );
    return proc;
  }

  /**
   * Whether the sandbox's line discipline leaves ^C, ^\\ and ^Z to the init to turn into signals
   * (sandbox-init.ts): the host kernel's does it itself.
   */
  protected terminalSignalsEmulated(): boolean {
    return false;
  }

  private terminalOf(p: ProcessSpec) {
    return p.tty === undefined ? undefined : { ...p.tty, emulateSignals: this.terminalSignalsEmulated() };
  }

  /** Like adjustConfig, for adjustments that need I/O (done once and cached by the driver). */
  protected async prepareConfig(_config: OciConfig): Promise<void> {}

  /** Whether start() takes `users` (a user namespace over idmapped layers). */
  protected acceptsUsers(): boolean {
    return false;
  }

  /**
   * Whether `exec` may join the container now that the runtime reports it "running": `pid` is the
   * host pid its state names, `runtimePid` the runtime process that started it. Default: at once.
   */
  execReady(_pid: number, _runtimePid: number): boolean {
    return true;
  }

  /** Non-KILL signals: runtimes that hide their processes (gVisor) route them through `kill --all`. */
  protected signalViaRuntime(): boolean {
    return false;
  }

  async version(): Promise<string> {
    const inv = this.invocation(["--version"], {});
    const r = await runCommand(inv.file, inv.args, { timeoutMs: 10_000, ...argv0Of(inv) });
    if (r.code !== 0) throw failedPrecondition(`${this.name} is not available`);
    const first = r.stdout.split("\n")[0] ?? "";
    return first.replace(/^.*version\s*/i, "").trim();
  }

  selfTest(o: SelfTestOptions): Promise<SelfTestResult> {
    return selfTestSandbox(this, o);
  }

  async egressConfig(): Promise<EgressConfig> {
    return {
      subnet: this.egress.subnet ?? "10.231.0.0/16",
      dnsServers: this.egress.dnsServers ?? (await hostDnsServers()),
      extraBlocked: this.egress.extraBlocked ?? [],
      released: this.egress.released ?? [],
    };
  }

  async start(spec: SandboxSpec, o: { signal?: AbortSignal } = {}): Promise<Sandbox> {
    if (!isValidSandboxId(spec.id)) throw invalidArgument("invalid sandbox id");
    if (!path.isAbsolute(spec.rootfs) || !path.isAbsolute(spec.bundleDir))
      throw invalidArgument("paths must be absolute");
    if (!path.isAbsolute(spec.process.cwd)) throw invalidArgument("cwd must be absolute");
    if (spec.process.args.length === 0) throw invalidArgument("empty command");
    if (spec.users !== undefined && !this.acceptsUsers())
      throw invalidArgument(`${this.name} does not run sandboxes in a user namespace`);
    o.signal?.throwIfAborted();
    // Small metadata writes to the page cache: sync calls cost microseconds where each thread-pool
    // round trip costs a fraction of a millisecond, on the path of every sandbox start.
    mkdirSync(this.stateRoot, { recursive: true });
    mkdirSync(spec.bundleDir, { recursive: true });
    const containerId = `${NAME_PREFIX}${spec.id}`;
    const cleanup = new Cleanup();
    try {
      // Ownership record: reclaim() after a crash touches only sandboxes listed here, so
      // servers (or test workers) with different state dirs never reclaim each other's.
      const marker = writeOwnerMarker(this.stateDir, spec.id);
      cleanup.push(() => rm(marker, { force: true }));
      const cg = await SandboxCgroup.create(spec.id, spec.limits, {
        deviceRules: this.startsInsideCgroups() || this.confinedToDeviceCgroup(),
        extraDevices: this.runtimeDevices(),
      });
      cleanup.push(() => cg.remove());
      const initHost = this.useInit ? await initBinary() : null;
      const undoRootfs = await this.prepareRootfs(spec);
      if (undoRootfs !== null) cleanup.push(undoRootfs);
      let net: EgressNetwork | null = null;
      let guard: EgressGuard | null = null;
      let resolv: string | undefined;
      if (spec.network === "egress") {
        const cfg = await this.egressConfig();
        net = await setupEgress(spec.id, cfg);
        const nsName = net.nsName;
        cleanup.push(() => teardownNetns(nsName));
        cleanup.push(() => removeBindFiles(spec.id));
        let dns = cfg.dnsServers;
        if (spec.egressPolicy === undefined) await clearStaleSandboxFirewall(net.vethHost);
        else {
          const extra = cfg.extraBlocked ?? [];
          const released = cfg.released ?? [];
          // A released range needs an allow list that names it.
          const lets = spec.egressPolicy.policy.allow !== null;
          const g = await EgressGuard.start({
            vethHost: net.vethHost,
            gateway: net.gateway,
            policy: spec.egressPolicy.policy,
            // The resolver runs on the host: a loopback stub resolver serves it too.
            upstream: this.egress.dnsServers ?? (await hostDnsServers(undefined, true)),
            released,
            blocked: (ip) => isBlockedAddress(ip, extra) && !(lets && inRanges(ip, released)),
            ...(spec.egressPolicy.onDenied === undefined ? {} : { onDenied: spec.egressPolicy.onDenied }),
          });
          guard = g;
          cleanup.push(() => g.stop());
          dns = [g.nameserver];
        }
        resolv = await writeBindFile(spec.id, "resolv.conf", resolvConf(dns), spec.bundleDir);
        await spec.onEgress?.({ vethHost: net.vethHost, address: net.address, gateway: net.gateway });
      }
      o.signal?.throwIfAborted();
      const config = ociConfig(
        spec,
        this.bundleOptions(
          {
            cgroupsPath: cg.ociPath,
            netnsPath: net?.nsPath,
            ...(resolv === undefined ? {} : { resolvConf: resolv }),
            ...(spec.trustBundle === undefined ? {} : { trustBundle: spec.trustBundle }),
          },
          net,
        ),
      );
      const reports = initHost === null ? null : this.initReports(spec.id);
      // The terminal is the init's (sandbox-init.ts): without it there is none.
      if ((initHost === null || reports === null) && spec.process.tty !== undefined)
        throw failedPrecondition(NO_TERMINAL);
      if (initHost !== null && reports !== null) {
        config.process.args = initArgs(
          "run",
          reports.kind === "fd" ? `fd:${REPORT_FD}` : reportFileIn("run"),
          config.process.args,
          this.terminalOf(spec.process),
        );
        config.mounts.push(initMount(initHost));
        if (reports.kind === "dir")
          config.mounts.push({
            destination: REPORT_DIR_IN_SANDBOX,
            type: "bind",
            source: reports.hostDir,
            options: ["rbind", "rw", "nosuid", "nodev", "noexec"],
          });
      }
      this.adjustConfig(config, spec);
      await this.prepareConfig(config);
      writeFileSync(path.join(spec.bundleDir, "config.json"), JSON.stringify(config), { mode: 0o600 });
      const viaFd = reports?.kind === "fd";
      const inv = this.invocation(
        ["run", ...(viaFd ? ["--preserve-fds", "1"] : []), "--bundle", spec.bundleDir, containerId],
        net === null ? {} : { netnsPath: net.nsPath },
      );
      const join = this.startsInsideCgroups() ? cg.joinFiles() : null;
      if (this.startsInsideCgroups() && join === null) throw internal("sandbox cgroups cannot be joined");
      const devicesJoin = this.confinedToDeviceCgroup() ? cg.deviceJoinFiles() : null;
      const run: Invocation & { joinCgroups?: string[] } =
        devicesJoin === null ? inv : joiningCgroups(inv, devicesJoin);
      const child = launch(run.file, run.args, {
        ...argv0Of(run),
        ...(join === null ? {} : { joinCgroups: join }),
        ...(run.joinCgroups === undefined ? {} : { joinCgroups: run.joinCgroups }),
        cwd: spec.bundleDir,
        stdin: spec.stdin === "pipe" ? "pipe" : "ignore",
        // Own session: a terminal's ^C to the server must not reach sandboxes directly.
        detached: true,
        reportPipe: viaFd,
      });
      const report = collectReport(child.report);
      // Without the helper (not built) a crashed server's sandboxes run until the next start's
      // reclaim; the start-up log warns about it.
      if (spec.deadlineMs !== undefined && WATCHDOG_BUILT) {
        try {
          const lock = spec.users === undefined ? undefined : userRangeLockFd(spec.users);
          startWatchdog(spec.deadlineMs, child, cg.taskDir(), cg.freezerDir(), lock);
        } catch (e) {
          // Never a sandbox without its deadline.
          child.kill("SIGKILL");
          await child.exited;
          throw e;
        }
      }
      const netInfo: SandboxNetwork =
        net === null ? { mode: "none" } : { mode: "egress", address: net.address, gateway: net.gateway };
      return new OciSandbox(
        this,
        spec,
        containerId,
        cg,
        net,
        netInfo,
        guard,
        child,
        join,
        undoRootfs,
        reports,
        report,
      );
    } catch (e) {
      await cleanup.run();
      if (o.signal?.aborted) throw cancelled("sandbox start cancelled", { cause: e });
      throw e;
    }
  }

  /** Runs a runtime subcommand to completion (state, delete, kill). */
  async call(sub: string[], netnsPath?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const inv = this.invocation(sub, netnsPath === undefined ? {} : { netnsPath });
    return runCommand(inv.file, inv.args, { timeoutMs: 30_000, ...argv0Of(inv) });
  }

  spawnExec(
    containerId: string,
    processFile: string,
    pidFile: string,
    stdin: "pipe" | "null",
    netnsPath: string | undefined,
    joinCgroups: string[] | null,
    reportPipe: boolean,
  ): Proc {
    const inv = this.invocation(
      [
        "exec",
        ...(reportPipe ? ["--preserve-fds", "1"] : []),
        ...this.execPidFileArgs(pidFile),
        "--process",
        processFile,
        containerId,
      ],
      netnsPath === undefined ? {} : { netnsPath },
    );
    return launch(inv.file, inv.args, {
      ...argv0Of(inv),
      // The runtime does not move exec'd processes when it does not manage cgroups.
      ...(joinCgroups === null ? {} : { joinCgroups }),
      stdin: stdin === "pipe" ? "pipe" : "ignore",
      detached: true,
      reportPipe,
    });
  }

  /** Where the runtime writes an exec'd process's pid: the host pid (crun, runc). */
  protected execPidFileArgs(pidFile: string): string[] {
    return ["--pid-file", pidFile];
  }

  /**
   * Signals an exec'd process by the pid its runtime wrote (execPidFileArgs): the host pid here.
   * Only while that pid is still a child of the runtime's exec client (crun and runc make it
   * one, and reap it): a pid the client has reaped, and that another process got since, is
   * never signalled.
   */
  async signalExec(
    _containerId: string,
    pid: number,
    client: Proc,
    signal: NodeJS.Signals,
    _netnsPath?: string,
  ): Promise<void> {
    if (!client.running || parentOf(pid) !== client.pid) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }

  /** Does the runtime still hold state for this container? */
  hasState(containerId: string): boolean {
    return existsSync(path.join(this.stateRoot, containerId));
  }

  /** Containers the runtime holds state for under our state root (reclaim). */
  async listContainers(): Promise<string[]> {
    try {
      return (await readdir(this.stateRoot)).filter((n) => n.startsWith(NAME_PREFIX));
    } catch {
      return [];
    }
  }

  /** Removes whatever state the runtime keeps for a container (destroy, reclaim). */
  async deleteState(containerId: string, netnsPath?: string): Promise<void> {
    if (this.hasState(containerId)) await this.call(["delete", "--force", containerId], netnsPath);
  }

  get routesSignals(): boolean {
    return this.signalViaRuntime();
  }
}

export type InitReports = { kind: "fd" } | { kind: "dir"; hostDir: string };

function reportFileIn(name: string): string {
  return `${REPORT_DIR_IN_SANDBOX}/${name}`;
}

/**
 * The pid the runtime wrote for an exec'd process: it appears once the process exists, so wait
 * for it while the exec client runs (null: the client ended first, or it never came).
 */
async function execPid(pidFile: string, client: Proc): Promise<number | null> {
  for (let i = 0; i < 200 && client.running; i++) {
    try {
      const text = readFileSync(pidFile, "utf8").trim();
      if (/^\d{1,10}$/.test(text) && Number(text) > 0) return Number(text);
    } catch {
      // not written yet
    }
    await Promise.race([client.exited, sleep(10)]);
  }
  return null;
}

class Cleanup {
  private readonly steps: Array<() => Promise<unknown>> = [];
  push(f: () => Promise<unknown>): void {
    this.steps.push(f);
  }
  async run(): Promise<void> {
    for (const f of this.steps.reverse()) await f().catch(() => undefined);
  }
}

function exitFromWait({ code, signal }: ProcExit): Omit<ExitStatus, "oomKilled"> {
  if (code === null) {
    // The runtime process itself died by a signal (we killed it): report like a shell would.
    const n = signal === null ? 9 : (osSignal(signal) ?? 9);
    return { exitCode: 128 + n, signal: n };
  }
  // Runtimes report a container killed by signal N as 128+N.
  if (code > 128 && code <= 128 + 64) return { exitCode: code, signal: code - 128 };
  return { exitCode: code, signal: -1 };
}

function osSignal(s: NodeJS.Signals): number | undefined {
  return (constants.signals as Record<string, number>)[s];
}

class OciSandbox implements Sandbox {
  readonly pid: number;
  readonly stdin;
  readonly stdout;
  readonly stderr;
  private execCount = 0;
  private nextReportSlot = 0;
  private readonly freeReportSlots: number[] = [];
  private killedBySigkill = false;
  private finalStats: ResourceStats | null = null;
  private destroyed: Promise<void> | null = null;
  private readonly children = new Set<Proc>();

  constructor(
    private readonly driver: OciCliDriver,
    private readonly spec: SandboxSpec,
    private readonly containerId: string,
    private readonly cg: SandboxCgroup,
    private readonly net: EgressNetwork | null,
    readonly network: SandboxNetwork,
    readonly egressGuard: EgressGuard | null,
    private readonly child: Proc,
    /** cgroup.procs files exec'd processes join (null: the runtime places them). */
    private readonly joinCgroups: string[] | null,
    private readonly undoRootfs: (() => Promise<void>) | null,
    /** How the init reports (null: no init in this sandbox). */
    private readonly reports: InitReports | null,
    /** The main process's report pipe, collected from the start. */
    private readonly mainReport: ReportCollector,
  ) {
    this.pid = child.pid;
    this.stdin = child.stdin;
    this.stdout = child.stdout;
    this.stderr = child.stderr;
    // A caller that never writes stdin must not crash the server with EPIPE.
    this.stdin?.on("error", () => undefined);
  }

  get id(): string {
    return this.spec.id;
  }

  async wait(): Promise<ExitStatus> {
    const ended = await this.child.exited;
    const report = parseInitReport(await this.reportOf("run", this.mainReport));
    // Before the caller unmounts the rootfs: nothing of ours may keep it busy.
    await this.releaseRootfs();
    // The main process is gone and its pid namespace with it: these totals are final.
    this.finalStats ??= await this.cg.stats();
    const st = this.finalStats;
    let exit = withReport(exitFromWait(ended), report);
    // A SIGKILL that lands while the runtime is still setting the container up makes the
    // runtime fail ("container init was killed") instead of reporting 137: same outcome.
    if (report === null && this.killedBySigkill && exit.signal === -1 && exit.exitCode !== 0)
      exit = { exitCode: 137, signal: 9 };
    return { ...exit, oomKilled: st.oomKills > 0 };
  }

  /**
   * The init's report text once the runtime process has exited: the pipe's remaining bytes (it
   * ends when the runtime closes its copy), or the report file `name` (runsc).
   */
  private async reportOf(name: string, pipe: ReportCollector): Promise<string> {
    if (this.reports === null) return "";
    if (this.reports.kind === "dir") {
      // Once the rootfs is released the report dir's tmpfs is gone and the path would resolve
      // through the image (where `/dev/.contree-io` may be a symlink): no report then.
      if (this.rootfsReleased !== null) return "";
      return readReportFile(path.join(this.reports.hostDir, name));
    }
    // The init's line ends the pipe; a report that never comes (the init was killed, and the
    // runtime is gone) is given up after a short bound.
    const timer = setTimeout(() => pipe.stop(), 2000);
    const text = await pipe.text;
    clearTimeout(timer);
    return text;
  }

  private rootfsReleased: Promise<void> | null = null;
  private releaseRootfs(): Promise<void> {
    this.rootfsReleased ??=
      this.undoRootfs === null ? Promise.resolve() : this.undoRootfs().catch(() => undefined);
    return this.rootfsReleased;
  }

  private get running(): boolean {
    return this.child.running;
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (signal === "SIGKILL" && this.running) this.killedBySigkill = true;
    if (signal !== "SIGKILL") {
      if (this.driver.routesSignals)
        await this.driver.call(["kill", "--all", this.containerId, signal.replace(/^SIG/, "")]);
      else await this.cg.kill(signal);
      return;
    }
    // Repeat until the runtime exits: a kill racing container creation must not miss the init.
    for (let i = 0; this.running && i < 100; i++) {
      await this.cg.kill("SIGKILL");
      await Promise.race([this.child.exited, sleep(50)]);
    }
    if (this.running) {
      this.child.kill("SIGKILL");
      await this.child.exited;
    }
  }

  async exec(p: ProcessSpec, o: { stdin?: "pipe" | "null" } = {}): Promise<ProcessHandle> {
    if (this.destroyed !== null) throw failedPrecondition("sandbox is destroyed");
    await this.waitRunning();
    const n = ++this.execCount;
    // Report files are reused (the init truncates): gVisor keeps a file it has seen open, so
    // unlinking one frees nothing, and the report tmpfs holds only a few dozen.
    const slot = this.freeReportSlots.pop() ?? this.nextReportSlot++;
    const file = await writeJson(
      this.spec.bundleDir,
      `exec-${n}.json`,
      this.driver.execProcess(this.spec.id, p, slot, this.reports),
    );
    const pidFile = path.join(this.spec.bundleDir, `exec-${n}.pid`);
    const viaFd = this.reports?.kind === "fd";
    const child = this.driver.spawnExec(
      this.containerId,
      file,
      pidFile,
      o.stdin ?? "null",
      this.net?.nsPath,
      this.joinCgroups,
      viaFd,
    );
    const report = collectReport(child.report);
    // Read as soon as the process ends, while the report dir is still mounted, whenever (or
    // whether) the caller waits.
    const exitWithReport = child.exited.then(async (ended) => {
      const text = await this.reportOf(`exec-${slot}`, report);
      this.freeReportSlots.push(slot);
      return withReport(exitFromWait(ended), parseInitReport(text));
    });
    this.children.add(child);
    void child.exited.then(() => this.children.delete(child));
    child.stdin?.on("error", () => undefined);
    let waited: Promise<Omit<ExitStatus, "oomKilled">> | undefined;
    return {
      pid: child.pid,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      wait: () => {
        waited ??= exitWithReport;
        return waited;
      },
      kill: async (signal: NodeJS.Signals = "SIGKILL") => {
        // The runtime's exec client does not pass signals on: the process it started gets them
        // (the init, which passes them to the command; a KILL takes the command with it).
        const pid = await execPid(pidFile, child);
        if (pid === null) child.kill(signal);
        else await this.driver.signalExec(this.containerId, pid, child, signal, this.net?.nsPath);
        if (signal === "SIGKILL") await child.exited;
      },
    };
  }

  /**
   * `exec` needs a started container; `run` gives no readiness signal, so poll the runtime (and
   * the driver's execReady: crun says "running" before the container's process runs our program).
   */
  private async waitRunning(): Promise<void> {
    for (let i = 0; i < 400; i++) {
      if (!this.running) throw failedPrecondition("sandbox has exited");
      const r = await this.driver.call(["state", this.containerId], this.net?.nsPath);
      if (r.code === 0) {
        try {
          const st = JSON.parse(r.stdout) as { status?: string; pid?: number };
          if (st.status === "running" && this.driver.execReady(st.pid ?? 0, this.child.pid)) return;
          if (st.status === "stopped") throw failedPrecondition("sandbox has exited");
        } catch (e) {
          if (e instanceof Error && e.name === "AppError") throw e;
        }
      }
      await sleep(10);
    }
    throw internal("sandbox did not reach running state");
  }

  private netns: Promise<number> | null = null;

  async connectLoopback(port: number): Promise<Duplex | null> {
    const sys = nativeSys();
    if (this.driver.kind !== "oci" || sys === null) return null;
    if (this.destroyed !== null) throw failedPrecondition("sandbox is destroyed");
    if (this.netns === null) {
      const opening = this.openNetns();
      this.netns = opening;
      // A failed open (the container was still being created) is tried again next time.
      opening.catch(() => {
        if (this.netns === opening) this.netns = null;
      });
    }
    const fd = sys.netnsConnect(await this.netns, port);
    return new Socket({ fd, readable: true, writable: true });
  }

  /**
   * An fd of the sandbox's network namespace, held until destroy(): the egress netns by path, else
   * the container process's. Its pid comes from the runtime's state; reading the state again
   * after the open proves the pid was still the container's (a live process keeps its pid).
   */
  private async openNetns(): Promise<number> {
    if (this.net !== null) return openSync(this.net.nsPath, "r");
    await this.waitRunning();
    const before = await this.containerPid();
    const fd = openSync(`/proc/${before}/ns/net`, "r");
    if ((await this.containerPid()) !== before) {
      closeSync(fd);
      throw failedPrecondition("sandbox has exited");
    }
    return fd;
  }

  private async containerPid(): Promise<number> {
    const r = await this.driver.call(["state", this.containerId]);
    const st = (r.code === 0 ? JSON.parse(r.stdout) : {}) as { status?: string; pid?: number };
    if (st.status !== "running" || !Number.isInteger(st.pid) || (st.pid ?? 0) <= 0)
      throw failedPrecondition("sandbox has exited");
    return st.pid as number;
  }

  stats(): Promise<ResourceStats> {
    // After wait(), the same figures without reading the cgroup again (run path).
    return this.finalStats === null ? this.cg.stats() : Promise.resolve(this.finalStats);
  }

  destroy(): Promise<void> {
    if (this.destroyed === null) this.destroyed = this.doDestroy();
    return this.destroyed;
  }

  private async doDestroy(): Promise<void> {
    await this.kill("SIGKILL");
    for (const c of this.children) c.kill("SIGKILL");
    this.stdout.destroy();
    this.stderr.destroy();
    this.stdin?.destroy();
    await this.driver.deleteState(this.containerId, this.net?.nsPath);
    await this.releaseRootfs();
    if (this.netns !== null) await this.netns.then(closeSync, () => undefined);
    if (this.net !== null) await teardownNetns(this.net.nsName);
    await this.egressGuard?.stop();
    await removeBindFiles(this.spec.id);
    await this.cg.remove();
    await removeBundleFiles(this.spec.bundleDir);
    await rm(ownerMarkerPath(this.driver.stateDirectory, this.spec.id), { force: true });
  }
}

/**
 * A sandbox must not outlive its deadline even when the server dies (SIGKILL, OOM): a tiny
 * static process (native/watchdog.c) in its own session, outside the server's process tree,
 * kills the sandbox's cgroup at the deadline, and exits as soon as the runtime process ends.
 * It watches through a pidfd and a monotonic clock; ~1 ms to start, no work while it waits.
 */
function startWatchdog(
  deadlineMs: number,
  runtime: Pick<Proc, "pid" | "startTime">,
  cgroupDir: string | null,
  freezerDir: string | null,
  userRangeLock: number | undefined,
): void {
  if (cgroupDir === null) throw internal("sandbox cgroup has no task directory");
  // Read at spawn, before the runtime could be reaped (the native backend reaps on a thread, at
  // any moment): the watchdog checks that the pid it watches is still this process, not one
  // that got the pid after it.
  const started = runtime.startTime;
  if (started === null) throw internal("runtime process start time unreadable");
  // CLOCK_MONOTONIC, the clock libuv's hrtime reads.
  const deadline = Number(process.hrtime.bigint() / 1_000_000n) + Math.max(0, Math.ceil(deadlineMs));
  const args = [
    String(deadline),
    String(runtime.pid),
    started,
    cgroupDir,
    ...(freezerDir === null ? [] : [freezerDir]),
  ];
  const dog = launch(WATCHDOG, args, {
    stdin: "ignore",
    detached: true,
    // It holds the sandbox's user-id range lock too: a server that died does not free the range
    // of a sandbox still running, only the sandbox's end does.
    ...(userRangeLock === undefined ? {} : { inheritFds: [userRangeLock] }),
  });
  // Its pipes carry nothing; never let them hold the event loop.
  dog.stdout.resume();
  dog.stderr.resume();
}

/** Field 4 of /proc/PID/stat (the parent pid), or -1 when the process is gone. */
function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? -1);
  } catch {
    return -1;
  }
}

export const OWNER_DIR = "sandboxes";

export function ownerMarkerPath(stateDir: string, id: string): string {
  return path.join(stateDir, OWNER_DIR, id);
}

function writeOwnerMarker(stateDir: string, id: string): string {
  const file = ownerMarkerPath(stateDir, id);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, "");
  return file;
}

async function removeBundleFiles(dir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (n === "config.json" || n.endsWith(".resolv.conf") || /^exec-\d+\.(json|pid)$/.test(n))
      await rm(path.join(dir, n), { force: true });
  }
  await rmdir(dir).catch(() => undefined);
}
