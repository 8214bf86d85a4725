import { randomBytes } from "node:crypto";
import { hostname as hostName, release } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { failedPrecondition, isStorageFull } from "../core/errors.js";
import { decodeStreamInput, toStreamRepr } from "../core/stream-repr.js";
import { isoMicros } from "../core/time.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { OperationRecord } from "../metadata/repos/operation-repo.js";
import type { Logger } from "../observability/logger.js";
import type { HandlerContext, HandlerOutcome, OperationHandler } from "../operations/operation-handler.js";
import { isOutputRef } from "../outputs/output-ref.js";
import type { OutputStore } from "../outputs/output-store.js";
import { readRange } from "../outputs/repr-chunks.js";
import type { EgressDenial } from "../runtime/egress-guard.js";
import { EgressPolicy } from "../runtime/egress-policy.js";
import {
  type IdRange,
  type RuntimeDriver,
  type Sandbox,
  TRUST_BUNDLE_PATH,
} from "../runtime/runtime-driver.js";
import type { AttachedProxy, HeaderRule, ProxiedRun, SandboxNet } from "../secrets/header-proxy.js";
import { leakNeedles, type Needle } from "../secrets/leak-needles.js";
import type { ActiveSnapshot, Snapshotter } from "../snapshots/snapshotter.js";
import { CleanupStack, type CleanupStep } from "./cleanup-stack.js";
import type { LiveInstances } from "./live-instances.js";
import { initProcess } from "./process.js";
import {
  type ProcessOutcome,
  ProcessSupervisor,
  recordEvent,
  type SupervisorContext,
} from "./process-supervisor.js";
import { consumedTotals } from "./resources.js";
import type { MaskedValue } from "./secret-mask.js";
import type { InstanceMetadata } from "./spawn-request.js";
import { StageClock } from "./stage-clock.js";
import { chunkRefs } from "./stdin-log.js";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The server kills a sandbox at its timeout; a watchdog outside the server does it this much
 * later if the server could not (it died): a sandbox never outlives its timeout by more.
 */
const WATCHDOG_GRACE_MS = 2000;
/** What OpenSSL, curl, Python requests and Node read for the CAs to trust. */
const TRUST_ENV = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] as const;

interface InstanceHandlerOptions {
  store: MetadataStore;
  /** Image filesystems: each run's rootfs (prepare), its commit, its removal. */
  snapshots: Snapshotter;
  /** Where stdout/stderr past the inline size are kept (the database holds references). */
  outputs: OutputStore;
  driver: RuntimeDriver;
  logger: Logger;
  limits: { memoryBytes: number; pids: number; cpuQuota?: number };
  /** Running sandboxes, for subprocesses and stdin while the main process lives. */
  live: LiveInstances;
  /** The data filesystem's guard: its reserve is given back when a result must be stored on a full disk. */
  disk?: { relieve(): Promise<void> };
  /**
   * Told each stage's duration once per run, for the stages the run entered: "prepare" (rootfs,
   * files), "start" (sandbox up, spawn event, stdin), "run" (until the main process exited and
   * its output is complete), "commit" (exit event, unmount, snapshot, shutdown event),
   * "teardown" (what the run held released).
   */
  observeStage?: (stage: string, seconds: number) => void;
  /** Project secrets: the values of those a run names, for that run only. */
  secrets?: {
    reveal(
      projectId: string,
      uses: ReadonlyArray<{ name: string; host?: string }>,
    ): Promise<Map<string, Buffer>>;
  };
  /** Header-mode secrets: the proxy their sandboxes' plain HTTP is redirected to. */
  headerProxy?: { attach(run: ProxiedRun, net: SandboxNet): Promise<AttachedProxy> };
  /** Host file with the header proxy's CA (when it intercepts HTTPS), for header-mode runs. */
  proxyTrustBundle?: () => Promise<string>;
}

/** A run's file system with the main process's environment. */
interface PreparedRun extends ActiveSnapshot {
  /** The snapshot's key (the operation id). */
  key: string;
  bundle: string;
  env: Record<string, string>;
  /** The host id range of the sandbox's user namespace, when the driver uses one. */
  users?: IdRange;
  /** The variables holding secrets' values (never shown, never committed). */
  secretEnv: ReadonlySet<string>;
  /** What a commit must not hold: each env secret's value and its encodings. */
  needles: Needle[];
  /** Header-mode secrets: placeholder → value in one header for one host. */
  headerRules: HeaderRule[];
  /** Host file of the CA bundle the sandbox trusts (header-mode runs of a server that intercepts HTTPS). */
  trustBundle?: string;
  /** Set once the sandbox's plain HTTP goes through the header proxy. */
  detachProxy?: CleanupStep;
  /** Every revealed value, masked in the output of the run's processes. */
  mask: MaskedValue[];
}

/** The started sandbox and its main process. */
interface StartedRun {
  sandbox: Sandbox;
  main: ProcessSupervisor;
  /** Destroys the sandbox; started once the main process is gone, awaited by the teardown. */
  destroy: CleanupStep;
  /** Ends the instance's live state (subprocesses killed, their exits recorded). */
  unregister: CleanupStep;
  /** Ends the header proxy's redirect (header-mode secrets only). */
  detachProxy?: CleanupStep | undefined;
  /** Stores the egress denials not yet recorded (runs with an egress policy). */
  flushEgress?: () => Promise<void>;
}

/**
 * Runs `instance` operations in stages: prepare (mount, files) → start (sandbox, spawn) → run
 * (supervise the main process) → commit (snapshot, one metadata transaction) → teardown (the
 * run's cleanup stack, after the completion is stored when the run has a result).
 */
export class InstanceHandler implements OperationHandler {
  readonly kind = "instance" as const;

  constructor(private readonly o: InstanceHandlerOptions) {}

  async run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome> {
    const meta = op.metadata as InstanceMetadata;
    const image = op.imageId === null ? undefined : await this.o.store.images.getAny(op.imageId);
    if (!image) return { status: "FAILED", error: "image not found" };
    // Retention: a run starting is a use of its image (one conditional statement, not awaited).
    this.o.store.images.touch([image.id]).catch(() => undefined);
    const startedAt = Date.now();
    const clock = new StageClock(this.o.observeStage);
    const teardown = new CleanupStack(this.o.logger, { opId: op.id });
    const release = async () => {
      clock.enter("teardown");
      await teardown.run();
      clock.end();
    };
    let outcome: HandlerOutcome | undefined;
    try {
      clock.enter("prepare");
      const prepared = await this.prepare(op, meta, image, ctx, teardown, startedAt);
      clock.enter("start");
      const started = await this.start(op, meta, prepared, ctx, teardown);
      clock.enter("run");
      const exited = await this.supervise(started, ctx);
      if (ctx.signal.aborted) return { status: "FAILED", error: "cancelled" };
      clock.enter("commit");
      await started.flushEgress?.();
      // The result is final: what is left to remove is released after the completion is stored.
      outcome = {
        ...(await this.commit(op, meta, image, prepared, started.main, exited, ctx)),
        cleanup: release,
      };
      return outcome;
    } finally {
      if (outcome === undefined) await release();
    }
  }

  /** The run's file system and the main process's environment; the `init` event. */
  private async prepare(
    op: OperationRecord,
    meta: InstanceMetadata,
    image: ImageRecord,
    ctx: HandlerContext,
    teardown: CleanupStack,
    startedAt: number,
  ): Promise<PreparedRun> {
    // Before anything is held: a secret that cannot be opened fails the run with a clear error.
    const revealed = await this.revealSecrets(op, meta);
    // A host id range for the sandbox's user namespace (null: the driver runs without one).
    const lease = this.o.driver.userRange?.() ?? null;
    // Released last: by then every process of the sandbox is gone (destroy killed its cgroup).
    if (lease !== null) teardown.push("release user range", async () => lease.release());
    const key = op.id;
    // Pushed before prepare: remove() also undoes a prepare that failed half-way.
    teardown.push("remove run snapshot", () => this.o.snapshots.remove(key));
    const fs = await this.o.snapshots.prepare(key, image, {
      projectId: op.projectId,
      capBytes: meta.resources_limits.max_layer_bytes,
      files: meta.files,
      cwd: meta.cwd,
      users: lease?.range ?? null,
    });
    await ctx.emit(0, "init", {
      started_at: isoMicros(startedAt),
      runtime_path: `/usr/bin/${this.o.driver.name}`,
      verbose: false,
      init_pid: 1,
      hostname: hostName(),
      kernel: release(),
      machine: process.arch,
    });
    const env: Record<string, string> = {
      PATH: DEFAULT_PATH,
      HOME: meta.uid === 0 ? "/root" : "/",
      HOSTNAME: meta.hostname,
      ...(image.env ?? {}),
      ...meta.env,
    };
    const secretEnv = new Set<string>();
    const needles: Needle[] = [];
    const headerRules: HeaderRule[] = [];
    const mask: MaskedValue[] = [];
    for (const use of meta.secrets ?? []) {
      const value = revealed.get(use.name) as Buffer;
      secretEnv.add(use.env);
      // Header mode too: a server that echoes the request back puts the value in the output.
      mask.push({ name: use.name, bytes: value });
      if (use.header !== undefined) {
        // Used when a request carries it: the proxy's onUse records the destination then.
        const placeholder = `contree-secret:${use.name}:${randomBytes(12).toString("hex")}`;
        headerRules.push({
          secret: use.name,
          host: use.header.host,
          header: use.header.name,
          placeholder,
          value: headerValue(use.name, value),
        });
        env[use.env] = placeholder;
        continue;
      }
      env[use.env] = value.toString("utf8");
      needles.push(...leakNeedles(use.name, value));
      await ctx.emit(0, "secret_used", { name: use.name, mode: "env", env: use.env });
      this.audit(op, { secret: use.name, mode: "env", env: use.env });
    }
    const trust =
      headerRules.length > 0 && this.o.proxyTrustBundle !== undefined
        ? await this.o.proxyTrustBundle()
        : undefined;
    if (trust !== undefined) {
      // The TLS stacks' usual knobs; a variable the run sets itself wins (docs/secrets.md).
      for (const name of TRUST_ENV) if (meta.env[name] === undefined) env[name] = TRUST_BUNDLE_PATH;
    }
    return {
      ...fs,
      key,
      bundle: join(fs.dir, "bundle"),
      env,
      secretEnv,
      needles,
      headerRules,
      ...(trust === undefined ? {} : { trustBundle: trust }),
      mask,
      ...(lease === null ? {} : { users: lease.range }),
    };
  }

  /** The audit log line of a secret's use (the operation's `secret_used` event is the other record). */
  private audit(op: OperationRecord, what: Record<string, string>): void {
    this.o.logger.info(
      { audit: "secret_used", opId: op.id, projectId: op.projectId, ...what },
      "secret used",
    );
  }

  private async revealSecrets(op: OperationRecord, meta: InstanceMetadata): Promise<Map<string, Buffer>> {
    const uses = (meta.secrets ?? []).map((s) =>
      s.header ? { name: s.name, host: s.header.host } : { name: s.name },
    );
    if (uses.length === 0) return new Map();
    if (!this.o.secrets) throw failedPrecondition("this server keeps no secrets");
    return this.o.secrets.reveal(op.projectId, uses);
  }

  /** The sandbox with its main process, registered live before its spawn event; stdin fed. */
  private async start(
    op: OperationRecord,
    meta: InstanceMetadata,
    run: PreparedRun,
    ctx: HandlerContext,
    teardown: CleanupStack,
  ): Promise<StartedRun> {
    const main = new ProcessSupervisor(this.supervisorContext(op, ctx), {
      spid: 1,
      command: meta.command,
      args: meta.args,
      shell: meta.shell,
      env: run.env,
      cwd: meta.cwd,
      uid: meta.uid,
      gid: meta.gid,
      timeout: meta.timeout,
      truncateAt: meta.truncate_output_at,
      // `close: false` keeps it open for POST .../subprocesses/1/stdin.
      stdinOpen: !meta.stdin.close,
      ...(meta.tty === true ? { tty: { rows: meta.rows ?? 24, cols: meta.cols ?? 80 } } : {}),
      secretEnv: run.secretEnv,
      mask: run.mask,
    });
    const egress = this.egressPolicy(op, meta, ctx);
    const sandbox = await this.o.driver.start(
      {
        id: `${op.id.slice(0, 8)}${op.id.slice(9, 13)}`,
        rootfs: run.rootfs,
        bundleDir: run.bundle,
        process: main.processSpec(),
        hostname: meta.hostname,
        network: meta.networking.enabled ? "egress" : "none",
        ...(egress === null ? {} : { egressPolicy: egress.spec }),
        limits: this.o.limits,
        stdin: "pipe",
        deadlineMs: meta.timeout * 1000 + WATCHDOG_GRACE_MS,
        ...(run.users === undefined ? {} : { users: run.users }),
        ...(run.headerRules.length === 0
          ? {}
          : {
              onEgress: (net) => this.attachProxy(op, run, ctx, net, teardown, egress?.spec.policy ?? null),
              ...(run.trustBundle === undefined ? {} : { trustBundle: run.trustBundle }),
            }),
      },
      { signal: ctx.signal },
    );
    const destroy = teardown.push("destroy sandbox", () => sandbox.destroy());
    const unregister = teardown.push("unregister live instance", () => this.o.live.unregister(op.id));
    // Registered before the spawn event: a client that waits for it may exec at once.
    await main.start(
      async () => initProcess(sandbox),
      () => this.o.live.register(op.id, sandbox, ctx.emit, main),
    );
    await this.feedStdin(op, meta, main.spawnInput, ctx);
    return {
      sandbox: sandbox as Sandbox,
      main,
      destroy: destroy as CleanupStep,
      unregister: unregister as CleanupStep,
      detachProxy: run.detachProxy,
      ...(egress === null ? {} : { flushEgress: () => egress.flush(sandbox) }),
    };
  }

  /** Redirects the sandbox's plain HTTP to the header proxy before its first process starts. */
  private async attachProxy(
    op: OperationRecord,
    run: PreparedRun,
    ctx: HandlerContext,
    net: SandboxNet,
    teardown: CleanupStack,
    egress: EgressPolicy | null,
  ): Promise<void> {
    const proxy = this.o.headerProxy;
    if (!proxy) throw failedPrecondition("this server does not substitute secrets in headers");
    const attached = await proxy.attach(
      {
        opId: op.id,
        rules: run.headerRules,
        // The redirect takes port 80 past the veth's egress rules: the proxy applies them.
        ...(egress === null
          ? {}
          : {
              allows: (host: string, address: string) => egress.allowsDestination(host, address),
            }),
        onUse: (secret, host) => {
          void ctx
            .emit(0, "secret_used", { name: secret, mode: "header", destination: host })
            .catch(() => undefined);
          this.audit(op, { secret, mode: "header", destination: host });
        },
      },
      net,
    );
    // Detached when the main process exits (supervise) or, failing that, by the teardown.
    run.detachProxy = teardown.push("detach header proxy", () => attached.detach());
  }

  /**
   * The run's egress policy, when it has one: each refused destination becomes an
   * `egress_denied` event (spid 0) naming it (the guard bounds how many). `flush` reads the last
   * drops and stores their events, before the shutdown event; later ones are not recorded.
   */
  private egressPolicy(op: OperationRecord, meta: InstanceMetadata, ctx: HandlerContext) {
    const { enabled, allow, deny } = meta.networking;
    if (!enabled || (allow === undefined && deny === undefined)) return null;
    const sctx = this.supervisorContext(op, ctx);
    let pending: Promise<void> = Promise.resolve();
    let open = true;
    const spec = {
      policy: EgressPolicy.of({
        ...(allow === undefined ? {} : { allow }),
        ...(deny === undefined ? {} : { deny }),
      }),
      onDenied: (d: EgressDenial) => {
        if (!open) return;
        pending = pending.then(() => recordEvent(sctx, 0, "egress_denied", { ...d }).catch(() => undefined));
      },
    };
    const flush = async (sandbox: Sandbox) => {
      await sandbox.egressGuard?.poll();
      open = false;
      await pending;
    };
    return { spec, flush };
  }

  private supervisorContext(op: OperationRecord, ctx: HandlerContext): SupervisorContext {
    return { opId: op.id, emit: ctx.emit, outputs: this.o.outputs, logger: this.o.logger };
  }

  /** The spawn request's stdin; a large one was stored apart at spawn time (`1.input`), its echo refers to it. */
  private async feedStdin(
    op: OperationRecord,
    meta: InstanceMetadata,
    stdin: Writable | null,
    ctx: HandlerContext,
  ) {
    if (stdin === null) return;
    const stored = isOutputRef(meta.stdin) ? meta.stdin : null;
    const input = stored
      ? await readRange(this.o.outputs, op.id, stored)
      : decodeStreamInput(meta.stdin.value, meta.stdin.encoding, "stdin");
    if (input.length > 0) {
      stdin.write(input);
      if (stored)
        for (const ref of chunkRefs(stored.$out.stream, 0, input.length))
          await ctx.emit(1, "stdin", { ...ref });
      else await ctx.emit(1, "stdin", { ...toStreamRepr(input) });
    }
    if (meta.stdin.close) stdin.end();
  }

  /** Until the main process has exited (timeout and cancel kill the sandbox) and its output is complete. */
  private async supervise(s: StartedRun, ctx: HandlerContext): Promise<ProcessOutcome> {
    const exited = await s.main.wait({
      signal: ctx.signal,
      onExit: async () => {
        // The main process is gone: whatever it left running (daemons, subprocesses) goes too.
        await s.unregister.run();
        // Before the sandbox's veth (and its address) can go to another run.
        await s.detachProxy?.run();
        await s.sandbox.kill("SIGKILL").catch(() => undefined);
      },
    });
    // Tearing down cgroups and runtime state overlaps the snapshot; the teardown awaits it.
    void s.destroy.run().catch(() => undefined);
    return exited;
  }

  /** The exit event, the snapshot (within max_layer_bytes, unless disposable) and the shutdown event. */
  private async commit(
    op: OperationRecord,
    meta: InstanceMetadata,
    image: ImageRecord,
    run: PreparedRun,
    main: ProcessSupervisor,
    exited: ProcessOutcome,
    ctx: HandlerContext,
  ): Promise<HandlerOutcome> {
    const event = (type: string, data: Record<string, unknown>) =>
      recordEvent(this.supervisorContext(op, ctx), 0, type, data);
    const snapshots = this.o.snapshots;
    // The unmount (it syncs the upper to disk, thread pool) overlaps the event (database).
    await Promise.all([main.recordExit(), snapshots.unmount(run.key)]);
    const capBytes = meta.resources_limits.max_layer_bytes;
    const diff = await snapshots.usage(run.key);
    let resultImage: ImageRecord | null = null;
    // The scratch filled up (writes failed inside), or an upper grew past the cap (apparent size).
    const overCap = diff.bytes > capBytes;
    if (diff.reachedCap || overCap) await event("size_cap", { limit_bytes: capBytes, file_size: diff.bytes });
    let noImage: string | null = overCap
      ? `the run wrote ${diff.bytes} bytes, over max_layer_bytes (${capBytes}): no image was kept`
      : null;
    // A secret's value (or an encoding of it) in the run's writes: no image, the reason recorded.
    const leak =
      meta.disposable || overCap || diff.empty || run.needles.length === 0
        ? null
        : await snapshots.search(run.key, run.needles);
    let refused: Record<string, unknown> | undefined;
    if (leak !== null) {
      const where = { secret: leak.needle.secret, path: leak.path, encoding: leak.needle.encoding };
      refused = { reason: "secret", ...where };
      await event("secret_in_layer", where);
      noImage = `the run wrote the value of secret ${JSON.stringify(where.secret)}${where.encoding === "raw" ? "" : ` (${where.encoding})`} into ${where.path}: no image was made`;
    }
    if (!meta.disposable && !overCap && leak === null) {
      try {
        const committed = await snapshots.commit(run.key, image, {
          projectId: op.projectId,
          operationId: op.id,
          ...(meta.preserve_env ? { env: withoutSecrets(run.env, run.secretEnv) } : {}),
        });
        resultImage = committed.image;
      } catch (err) {
        // The run finished: its output, exit code and resources are recorded whatever happens to its diff.
        const storageFull = isStorageFull(err);
        this.o.logger.error({ err, opId: op.id }, "the run's changes could not be saved");
        noImage = storageFull
          ? "the run finished but its changes could not be saved: the server is out of storage space (no image was made)"
          : "the run finished but its changes could not be saved (no image was made)";
        // The snapshotter gave the run's scratch back; the reserve makes room for the result.
        if (storageFull) await this.o.disk?.relieve();
      }
    }
    await event("shutdown", {
      stopped_at: isoMicros(Date.now()),
      reason: exited.timedOut ? "timeout" : "job_complete",
    });
    const consumed = consumedTotals(exited.resources, exited.stats);
    return {
      status: "SUCCESS",
      error: noImage,
      metadata: { ...meta, result: main.result(), ...(refused ? { commit_refused: refused } : {}) },
      resultImageId: resultImage?.id ?? null,
      imageSize: diff.bytes,
      consumedCpu: consumed.cpuSeconds,
      consumedMemory: consumed.memoryBytes,
      completion: { result_image_uuid: resultImage?.id ?? null, image_size_bytes: diff.bytes },
    };
  }
}

/** The environment an image records (`preserve_env`): never a variable that held a secret. */
function withoutSecrets(env: Record<string, string>, secretEnv: ReadonlySet<string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !secretEnv.has(k)));
}

/** A header cannot carry a line break or NUL (it would split the request): refused, never sent. */
function headerValue(name: string, value: Buffer): string {
  const text = value.toString("utf8");
  if (/[\r\n\0]/.test(text))
    throw failedPrecondition(`secret ${JSON.stringify(name)} holds a line break and cannot go in a header`);
  return text;
}
