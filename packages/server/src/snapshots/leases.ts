import { hostname } from "node:os";
import { newId } from "../core/ids.js";
import type { Repos } from "../metadata/metadata-store.js";
import type { LeaseRepo } from "../metadata/repos/lease-repo.js";

/** What a lease keeps alive: images (each with its whole mount chain as GC sees it) and layers. */
export interface LeaseSpec {
  /** run, instance, import, inspect, flatten, … (logs and `gc --dry-run`). */
  kind: string;
  projectId?: string | null;
  images?: readonly string[];
  /**
   * Layers by id. A run leases the chain it mounted, not only its image: a flatten may give
   * the image a new chain while the old layers are still under the run's overlay.
   */
  layers?: readonly string[];
}

export interface Lease {
  readonly id: string;
  /** Idempotent. */
  release(): Promise<void>;
}

interface LeaseStore {
  readonly leases: LeaseRepo;
  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
}

/** How long a lease outlives its holder's last renewal. */
export const LEASE_TTL_MS = 120_000;

/**
 * Leases (containerd's idea): whatever is in flight holds one, and garbage collection never
 * removes what a lease names. They are rows, so they survive a restart; a holder renews its
 * leases every third of the TTL, so the leases of a holder that died (a crashed server, a killed
 * admin command) expire by themselves within `LEASE_TTL_MS`.
 *
 * Protocol with the sweep: GC deletes layer rows only in a transaction that re-reads the
 * unexpired leases, so a lease committed before it protects. A holder that finds a layer by
 * itself (an import reusing a stored layer) takes the lease with `check` verifying, in the same
 * transaction, that the layer row still exists: either the lease lands first and the sweep
 * keeps the layer, or the sweep lands first and the holder sees the row gone.
 *
 * A queued or running operation's input image and files need no row: GC treats every
 * operation that is not terminal as holding them (durable with the operation itself, and gone
 * when recovery fails the operations of a crashed server).
 */
export class LeaseManager {
  readonly holder: string;
  private readonly held = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly store: LeaseStore,
    private readonly opts: { holder?: string; ttlMs?: number; now?: () => number } = {},
  ) {
    this.holder = opts.holder ?? `${hostname()}:${process.pid}`;
  }

  private get ttl(): number {
    return this.opts.ttlMs ?? LEASE_TTL_MS;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * Takes a lease. `check` runs in the same transaction as the insert (throw from it to refuse:
   * nothing is held then).
   */
  async acquire(spec: LeaseSpec, check?: (tx: Repos) => Promise<void>): Promise<Lease> {
    const id = newId();
    const now = this.now();
    await this.store.transaction(async (tx) => {
      if (check) await check(tx);
      await tx.leases.insert({
        id,
        holder: this.holder,
        kind: spec.kind,
        projectId: spec.projectId ?? null,
        imageIds: [...(spec.images ?? [])],
        layerIds: [...(spec.layers ?? [])],
        createdAt: now,
        expiresAt: now + this.ttl,
      });
    });
    this.held.add(id);
    this.schedule();
    let released: Promise<void> | undefined;
    return {
      id,
      release: () => {
        released ??= (async () => {
          this.held.delete(id);
          await this.store.leases.release(id);
        })();
        return released;
      },
    };
  }

  /** Runs `fn` under a lease, released however `fn` ends. */
  async with<T>(spec: LeaseSpec, fn: () => Promise<T>): Promise<T> {
    const lease = await this.acquire(spec);
    try {
      return await fn();
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  /** Renews every lease this process holds now (also done on a timer). */
  async renew(): Promise<void> {
    if (this.held.size > 0) await this.store.leases.renew([...this.held], this.now() + this.ttl);
  }

  /** Stops renewing: what this process still holds expires within the TTL. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(
      () => {
        if (this.held.size === 0) {
          clearInterval(this.timer);
          this.timer = undefined;
          return;
        }
        this.renew().catch(() => undefined);
      },
      Math.max(1000, Math.floor(this.ttl / 3)),
    );
    this.timer.unref();
  }
}
