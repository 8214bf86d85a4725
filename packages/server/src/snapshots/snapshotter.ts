/**
 * The one owner of image filesystems (containerd's Snapshotter is the model): the layer store,
 * the writable rootfs of every run, its commit into a layer and an image, read-only views for
 * inspect, compaction (flatten), and the entry point of garbage collection. Nothing else mounts
 * a layer chain, writes a layer or turns an image into host paths.
 *
 * A run's snapshot, keyed by the run (its operation id):
 *
 *   prepare(key, image, opts)   active: a writable rootfs at `rootfs` (an overlay over the
 *                               image's mount chain on a fresh scratch capped at `capBytes`,
 *                               idmapped to `users` for a sandbox in a user namespace, the
 *                               uploaded files written in, the cwd made). The chain it mounted is
 *                               leased from here until remove(key): a flatten may give the image
 *                               a new chain meanwhile, GC keeps the mounted one.
 *      ↓ the sandbox runs on `rootfs`, and is gone before the next step
 *   unmount(key)                the mount ends (syncs the writes); the scratch keeps them
 *   usage(key)                  what the run wrote: bytes, entries, devices, whether it hit the cap
 *   commit(key, c)              "unchanged" (nothing written, env unchanged), or one new layer
 *                               (stage → copy/rename → publish) and its layer and image rows in
 *                               one transaction; a failure leaves neither rows nor layer dir. On
 *                               a full disk the run's scratch is given back before it throws.
 *   remove(key)                 unmount, scratch released, run dir removed, lease released.
 *                               Idempotent, and safe after a prepare that failed half-way.
 *
 * Images (committed snapshots, immutable):
 *
 *   view(image)                 a read-only view for inspect: an opaque reader, no host path;
 *                               the image and the chain it reads are leased until release()
 *   flatten(image)              compaction: the merged chain copied into one layer, which
 *                               becomes the mount chain of the image and of every descendant
 *                               built on it, through the same publish sequence as commit. Leases
 *                               the image while it copies. Commit queues it past MAX_MOUNT_CHAIN.
 *   gc(opts)                    one mark-and-sweep pass (snapshots/gc/), given by composition
 *
 * Per-project storage usage (bytes a project uses alone, bytes it shares) is not a snapshot's:
 * it lives in `snapshots/usage.ts` and reads the layer and image rows.
 */
import type { MergedView } from "../layers/merged-view.js";
import type { ImageRecord } from "../metadata/repos/image-repo.js";
import type { IdRange } from "../sys/mount.js";

/** An uploaded file to write into the rootfs before the sandbox starts. */
export interface RunFile {
  uuid: string;
  uid: number;
  gid: number;
  /** Octal text, as the API takes it ("644"). */
  mode: string;
}

export interface PrepareOptions {
  /** Whose files `files` names. */
  projectId: string;
  /** The run's `max_layer_bytes`: writes past it fail inside the sandbox where the scratch enforces it. */
  capBytes: number;
  /** Path in the image → file. */
  files: Readonly<Record<string, RunFile>>;
  /** Made (as a directory) when missing. */
  cwd: string;
  /** The sandbox's user namespace range: the layers are idmapped to it (null: no user namespace). */
  users: IdRange | null;
}

/** A prepared run's filesystem. `dir` is the run's own directory (its runtime bundle goes there). */
export interface ActiveSnapshot {
  readonly rootfs: string;
  readonly dir: string;
}

export interface SnapshotUsage {
  /** Apparent bytes of regular files and symlink targets the run wrote. */
  bytes: number;
  /** Entries written (files, dirs, whiteouts, links). */
  entries: number;
  /** Nothing written. */
  empty: boolean;
  /** Device nodes the sandbox made (they are made inert before they reach the layer store). */
  devices: number;
  /** The run's writes ran into the cap (so some failed inside the sandbox). */
  reachedCap: boolean;
}

export interface CommitRequest {
  projectId: string;
  operationId: string;
  /** The environment to record (`preserve_env`); absent: the image keeps its parent's. */
  env?: Record<string, string>;
}

export type CommitResult =
  | { kind: "unchanged"; image: ImageRecord }
  | { kind: "committed"; image: ImageRecord };

/** A read-only image filesystem as inspect reads it. Opaque to routes. */
export interface ImageView {
  readonly id: string;
  /** Changes when the image's mount chain does (compaction): a cache key for what is read through it. */
  readonly key: string;
  /** The merged filesystem (its answers and errors never name a host path). */
  reader(): MergedView;
  /** Ends the view's lease; idempotent. */
  release(): Promise<void>;
}

/** Garbage collection as composition gives it (snapshots/gc/). */
export interface Collector<Report> {
  collect(o: { dryRun: boolean }): Promise<Report>;
}

export interface Snapshotter<GcReport = unknown> {
  prepare(key: string, image: ImageRecord, opts: PrepareOptions): Promise<ActiveSnapshot>;
  unmount(key: string): Promise<void>;
  usage(key: string): Promise<SnapshotUsage>;
  /**
   * The first of `needles` found in what the unmounted run wrote (file contents, symlink targets,
   * names), with its path as the sandbox saw it; streamed, memory bounded. Null: none found.
   */
  search<N extends { bytes: Buffer }>(
    key: string,
    needles: readonly N[],
  ): Promise<{ needle: N; path: string } | null>;
  commit(key: string, parent: ImageRecord, c: CommitRequest): Promise<CommitResult>;
  remove(key: string): Promise<void>;
  view(image: ImageRecord): Promise<ImageView>;
  /** The new layer's id; null when the chain was already short enough (or the image is gone). */
  flatten(image: ImageRecord): Promise<string | null>;
  gc(o?: { dryRun?: boolean }): Promise<GcReport>;
  /** Waits for queued flattens, releases what is held between runs (warm scratch). */
  close(): Promise<void>;
}
