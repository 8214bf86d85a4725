import { mkdirSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { hostname as hostName, release } from "node:os";
import { join } from "node:path";
import type { ContentStore } from "../content/content-store.js";
import { type Digest, digestFromHex } from "../core/digest.js";
import { internal, isStorageFull, notFound, payloadTooLarge } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { decodeStreamInput, toStreamRepr } from "../core/stream-repr.js";
import { isoMicros } from "../core/time.js";
import { type LayerStore, runLayerId } from "../images/layer-store.js";
import { neutralizeDevices } from "../layers/inert-device.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { OperationRecord } from "../metadata/repos/operation-repo.js";
import type { Logger } from "../observability/logger.js";
import type { HandlerContext, HandlerOutcome, OperationHandler } from "../operations/operation-handler.js";
import { isOutputRef } from "../outputs/output-ref.js";
import type { OutputStore } from "../outputs/output-store.js";
import { readRange } from "../outputs/repr-chunks.js";
import { type DiffStats, diffStats, mountRootfs, unmount } from "../runtime/rootfs.js";
import type { ExitStatus, ResourceStats, RuntimeDriver, Sandbox } from "../runtime/runtime-driver.js";
import type { RunScratch, ScratchBackend } from "../runtime/scratch/scratch.js";
import { runCommand } from "../sys/run-command.js";
import type { LiveInstances } from "./live-instances.js";
import { OutputCapture } from "./output-capture.js";
import { eventResources, redactEnv, resultResources } from "./resources.js";
import { ensureDir, isPlainDirInside, writeFileInto } from "./rootfs-writer.js";
import type { InstanceMetadata } from "./spawn-request.js";
import { chunkRefs } from "./stdin-log.js";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The server kills a sandbox at its timeout; a watchdog outside the server does it this much
 * later if the server could not (it died): a sandbox never outlives its timeout by more.
 */
export const WATCHDOG_GRACE_MS = 2000;

export interface InstanceHandlerOptions {
  store: MetadataStore;
  layers: LayerStore;
  content: ContentStore;
  /** Where stdout/stderr past the inline size are kept (the database holds references). */
  outputs: OutputStore;
  driver: RuntimeDriver;
  /** Per-run dirs (rootfs, bundle), on the data filesystem. */
  runsDir: string;
  /** Where a run's upper/work live so that max_layer_bytes holds while it writes. */
  scratch: ScratchBackend;
  logger: Logger;
  limits: { memoryBytes: number; pids: number; cpuQuota?: number };
  /** Running sandboxes, for subprocesses and stdin while the main process lives. */
  live: LiveInstances;
  /** The data filesystem's guard: its reserve is given back when a result must be stored on a full disk. */
  disk?: { relieve(): Promise<void> };
  /** Called after a new image is committed (compaction looks at its chain; may make us wait). */
  onImage?: (img: ImageRecord) => Promise<void> | void;
}

/** Runs `instance` operations: mount → sandbox → capture → snapshot → one metadata transaction. */
export class InstanceHandler implements OperationHandler {
  readonly kind = "instance" as const;

  constructor(private readonly o: InstanceHandlerOptions) {}

  async run(op: OperationRecord, ctx: HandlerContext): Promise<HandlerOutcome> {
    const meta = op.metadata as InstanceMetadata;
    const image = op.imageId === null ? undefined : await this.o.store.images.getAny(op.imageId);
    if (!image) return { status: "FAILED", error: "image not found" };
    const t0 = Date.now();
    const runId = `${op.id.slice(0, 8)}${op.id.slice(9, 13)}`;
    const dir = join(this.o.runsDir, op.id);
    const capBytes = meta.resources_limits.max_layer_bytes;
    let scratch: RunScratch | undefined;
    const rootfs = join(dir, "rootfs");
    const bundle = join(dir, "bundle");
    let mounted = false;
    let sandbox: Sandbox | undefined;
    let deferRelease = false;
    // A host id range for the sandbox's user namespace (null: the driver runs without one).
    const lease = this.o.driver.userRange?.() ?? null;
    /** Removes whatever the run still holds; idempotent, never throws. */
    const releaseRun = async (): Promise<void> => {
      await this.o.live.unregister(op.id);
      if (sandbox)
        await sandbox
          .destroy()
          .catch((err: unknown) => this.o.logger.warn({ err, opId: op.id }, "sandbox cleanup failed"));
      if (mounted)
        await unmount(rootfs).catch((err: unknown) =>
          this.o.logger.warn({ err, opId: op.id }, "unmount failed"),
        );
      if (scratch) await scratch.release();
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      // Every process of the sandbox is gone (destroy killed its cgroup): the range is free.
      lease?.release();
    };
    try {
      mkdirSync(bundle, { recursive: true });
      scratch = await this.o.scratch.acquire(dir, capBytes);
      const { upper, work } = scratch;
      const lowers = this.o.layers.paths(image.mountChain);
      const idmap = lease === null ? {} : { idmap: lease.range };
      // Host root has no id in an idmapped view: the server's own writes (files, a missing cwd)
      // go through a plain mount of the same upper first, with the owners as given. With files
      // that is known up front; whether the cwd exists only the merged view tells.
      const hasFiles = Object.keys(meta.files).length > 0;
      const plainFirst = lease !== null && hasFiles;
      await mountRootfs({ lowers, upper, work, target: rootfs, ...(plainFirst ? {} : idmap) });
      mounted = true;
      const writeFiles = async () => {
        for (const [path, f] of Object.entries(meta.files)) {
          const file = await this.o.store.files.findById(op.projectId, f.uuid);
          if (!file || !this.o.content.localPath) throw notFound(`file ${f.uuid} not found`);
          const src = this.o.content.localPath(digestFromHex(file.sha256) as Digest);
          await writeFileInto(rootfs, path, src, {
            uid: f.uid,
            gid: f.gid,
            mode: Number.parseInt(f.mode, 8),
          }).catch((err: unknown) => {
            // Out of space here is the run's own cap, not the server's storage.
            if (isStorageFull(err))
              throw payloadTooLarge(`the run's files do not fit in max_layer_bytes (${capBytes})`, {
                cause: err,
              });
            throw err;
          });
        }
      };
      if (lease !== null && (plainFirst || !isPlainDirInside(rootfs, meta.cwd))) {
        if (!plainFirst) {
          await unmount(rootfs);
          mounted = false;
          await mountRootfs({ lowers, upper, work, target: rootfs });
          mounted = true;
        }
        await writeFiles();
        await ensureDir(rootfs, meta.cwd);
        await unmount(rootfs);
        mounted = false;
        await mountRootfs({ lowers, upper, work, target: rootfs, ...idmap });
        mounted = true;
      } else {
        await writeFiles();
      }

      const env = {
        PATH: DEFAULT_PATH,
        HOME: meta.uid === 0 ? "/root" : "/",
        HOSTNAME: meta.hostname,
        ...(image.env ?? {}),
        ...meta.env,
      };
      const args = meta.shell ? ["/bin/sh", "-c", meta.command, ...meta.args] : [meta.command, ...meta.args];
      // The cwd check (file system, thread pool) and the event (database) overlap.
      await Promise.all([
        ensureDir(rootfs, meta.cwd),
        ctx.emit(0, "init", {
          started_at: isoMicros(t0),
          runtime_path: `/usr/bin/${this.o.driver.name}`,
          verbose: false,
          init_pid: 1,
          hostname: hostName(),
          kernel: release(),
          machine: process.arch,
        }),
      ]);
      sandbox = await this.o.driver.start(
        {
          id: runId,
          rootfs,
          bundleDir: bundle,
          process: {
            args,
            env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
            cwd: meta.cwd,
            uid: meta.uid,
            gid: meta.gid,
          },
          hostname: meta.hostname,
          network: meta.networking.enabled ? "egress" : "none",
          limits: this.o.limits,
          stdin: "pipe",
          deadlineMs: meta.timeout * 1000 + WATCHDOG_GRACE_MS,
          ...(lease === null ? {} : { users: lease.range }),
        },
        { signal: ctx.signal },
      );
      const started = Date.now();
      // Registered before the spawn event: a client that waits for it may exec at once.
      this.o.live.register(op.id, sandbox, ctx.emit, env, meta.stdin.close ? null : sandbox.stdin);
      await ctx.emit(1, "spawn", {
        pid: 1,
        command: args[0],
        args: args.slice(1),
        shell: meta.shell,
        cwd: meta.cwd,
        uid: meta.uid,
        gid: meta.gid,
        timeout: meta.timeout,
        truncate_at: meta.truncate_output_at,
        env: redactEnv(env),
      });
      const sbx = sandbox;
      const capture = (stream: "stdout" | "stderr") => {
        const name = `1.${stream}`;
        return new OutputCapture(
          stream === "stdout" ? sbx.stdout : sbx.stderr,
          meta.truncate_output_at,
          { name, create: () => this.o.outputs.create(op.id, name) },
          (data) => ctx.emit(1, stream, data),
          (err) => this.o.logger.warn({ err, opId: op.id, stream }, "could not store output"),
        );
      };
      const stdout = capture("stdout");
      const stderr = capture("stderr");
      if (sbx.stdin) {
        // A large stdin was stored apart at spawn time (`1.input`); its echo refers to it.
        const stored = isOutputRef(meta.stdin) ? meta.stdin : null;
        const input = stored
          ? await readRange(this.o.outputs, op.id, stored)
          : decodeStreamInput(meta.stdin.value, meta.stdin.encoding, "stdin");
        sbx.stdin.on("error", () => undefined);
        if (input.length > 0) {
          sbx.stdin.write(input);
          if (stored)
            for (const ref of chunkRefs(stored.$out.stream, 0, input.length))
              await ctx.emit(1, "stdin", { ...ref });
          else await ctx.emit(1, "stdin", { ...toStreamRepr(input) });
        }
        // `close: false` keeps it open for POST .../subprocesses/1/stdin.
        if (meta.stdin.close) sbx.stdin.end();
      }

      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        void sbx.kill("SIGKILL");
      }, meta.timeout * 1000);
      const onAbort = () => void sbx.kill("SIGKILL");
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      let exit: ExitStatus;
      try {
        exit = await sbx.wait();
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener("abort", onAbort);
      }
      // From here the run has a result: a full disk may cost events, never the result itself.
      const after = (spid: number, type: string, data: Record<string, unknown>) =>
        ctx.emit(spid, type, data).catch((err: unknown) => {
          if (!isStorageFull(err)) throw err;
          this.o.logger.warn({ err, opId: op.id, type }, "event not stored: out of storage space");
        });
      // The main process is gone: whatever it left running (daemons, subprocesses) goes too.
      await this.o.live.unregister(op.id);
      await sbx.kill("SIGKILL").catch(() => undefined);
      const [out, err] = await Promise.all([stdout.done, stderr.done]);
      const stats: ResourceStats | undefined = await sbx.stats().catch(() => undefined);
      const ended = Date.now();
      // Tearing down cgroups and runtime state overlaps the snapshot; releaseRun() awaits it.
      void sbx.destroy().catch(() => undefined);
      for (const [name, c] of [
        ["stdout", out],
        ["stderr", err],
      ] as const) {
        if (c.dropped > 0)
          await after(1, "truncated", {
            stream: name,
            bytes_emitted: c.emitted,
            bytes_dropped: c.dropped,
          });
      }
      if (ctx.signal.aborted) return { status: "FAILED", error: "cancelled" };

      const signal = timedOut ? 9 : exit.signal;
      const exitCode = timedOut || exit.signal > 0 ? -1 : exit.exitCode;
      // The unmount (it syncs the upper to disk, thread pool) overlaps the event (database).
      await Promise.all([
        after(1, "exit", {
          pid: 1,
          code: exitCode,
          signal,
          timed_out: timedOut,
          duration_ms: ended - started,
          core_dump: false,
          resources: eventResources(stats),
        }),
        unmount(rootfs).then(() => {
          mounted = false;
        }),
      ]);
      const diff = await diffStats(upper);
      const result = {
        state: {
          exit_code: exitCode,
          signal,
          pid: 1,
          timed_out: timedOut,
          stopped: false,
          continued: false,
          core_dump: false,
          oom_killed: exit.oomKilled,
        },
        stdout: out.repr,
        stderr: err.repr,
        resources: resultResources(stats, ended - started),
      };
      let resultImage: ImageRecord | null = null;
      // The scratch filled up (writes failed inside), or an upper grew past the cap (apparent size).
      const full = await scratch.reachedCap();
      const overCap = diff.bytes > capBytes;
      if (full || overCap) await after(0, "size_cap", { limit_bytes: capBytes, file_size: diff.bytes });
      let noImage: string | null = overCap
        ? `the run wrote ${diff.bytes} bytes, over max_layer_bytes (${capBytes}): no image was kept`
        : null;
      if (!meta.disposable && !overCap) {
        try {
          resultImage = await this.commit(op, meta, image, env, upper, diff, scratch.commit === "copy");
        } catch (err) {
          // The run finished: its output, exit code and resources are recorded whatever happens to its diff.
          const storageFull = isStorageFull(err);
          this.o.logger.error({ err, opId: op.id }, "the run's changes could not be saved");
          noImage = storageFull
            ? "the run finished but its changes could not be saved: the server is out of storage space (no image was made)"
            : "the run finished but its changes could not be saved (no image was made)";
          if (storageFull) {
            // What the run wrote is no longer needed; the reserve makes room for the result.
            await scratch.release();
            await this.o.disk?.relieve();
          }
        }
      }
      if (resultImage !== null && resultImage.id !== image.id) await this.o.onImage?.(resultImage);
      await after(0, "shutdown", {
        stopped_at: isoMicros(Date.now()),
        reason: timedOut ? "timeout" : "job_complete",
      });
      const consumedCpu = (stats?.cpuTotalNs ?? 0) / 1e9;
      // The result is final: what is left to remove is released after the completion is stored.
      deferRelease = true;
      return {
        cleanup: releaseRun,
        status: "SUCCESS",
        error: noImage,
        metadata: { ...meta, result },
        resultImageId: resultImage?.id ?? null,
        imageSize: diff.bytes,
        consumedCpu,
        consumedMemory: stats?.memoryPeakBytes ?? 0,
        completion: { result_image_uuid: resultImage?.id ?? null, image_size_bytes: diff.bytes },
      };
    } finally {
      if (!deferRelease) await releaseRun();
    }
  }

  /** Snapshot: the upper becomes a layer by rename, the image row is one transaction. */
  private async commit(
    op: OperationRecord,
    meta: InstanceMetadata,
    parent: ImageRecord,
    env: Record<string, string>,
    upper: string,
    diff: DiffStats,
    copy: boolean,
  ): Promise<ImageRecord> {
    const envChanged = meta.preserve_env && JSON.stringify(env) !== JSON.stringify(parent.env ?? {});
    if (diff.empty && !envChanged) return parent;
    const layerId = diff.empty ? null : runLayerId();
    // The parent's chain may have been flattened while we ran: build on its current form.
    const base = (await this.o.store.images.getAny(parent.id))?.mountChain ?? parent.mountChain;
    // The sandbox made device nodes (CAP_MKNOD; the diff walk counted them): none reaches the
    // layer store live.
    if (layerId !== null && diff.devices > 0) {
      await neutralizeDevices(upper).catch((err: unknown) => {
        throw internal("could not neutralise device nodes in the run's changes", { cause: err });
      });
    }
    if (layerId !== null) {
      if (copy) {
        // From another filesystem: GNU cp keeps whiteouts (0/0 devices), opaque xattrs, owners, modes.
        const staged = await this.o.layers.stage();
        try {
          const r = await runCommand("cp", ["-a", "--no-target-directory", `${upper}/.`, staged]);
          if (r.code !== 0) {
            const full = /No space left on device|Disk quota exceeded/.test(r.stderr);
            throw Object.assign(new Error(`cp failed: ${r.stderr.trim()}`), full ? { code: "ENOSPC" } : {});
          }
          await this.o.layers.publish(staged, layerId);
        } catch (err) {
          await this.o.layers.discard(staged);
          throw internal("could not copy the run's changes into the layer store", { cause: err });
        }
      } else {
        await rename(upper, this.o.layers.path(layerId));
      }
    }
    const img: ImageRecord = {
      id: newId(),
      projectId: op.projectId,
      parentId: parent.id,
      layerId,
      mountChain: layerId === null ? base : [layerId, ...base],
      depth: parent.depth + 1,
      env: meta.preserve_env ? env : parent.env,
      operationId: op.id,
      size: parent.size + diff.bytes,
      source: null,
      createdAt: Date.now(),
    };
    try {
      await this.o.store.transaction(async (tx) => {
        if (layerId !== null) {
          await tx.images.insertLayer({
            id: layerId,
            kind: "run",
            chainId: null,
            size: diff.bytes,
            entries: diff.entries,
            createdAt: img.createdAt,
          });
        }
        await tx.images.insert(img);
      });
    } catch (err) {
      if (layerId !== null) await rm(this.o.layers.path(layerId), { recursive: true, force: true });
      throw internal("could not record the result image", { cause: err });
    }
    return img;
  }
}
