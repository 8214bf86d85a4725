import type { Kysely } from "kysely";
import type { FileRepo } from "./repos/file-repo.js";
import type { GcRepo } from "./repos/gc-repo.js";
import type { ImageRepo } from "./repos/image-repo.js";
import type { LeaseRepo } from "./repos/lease-repo.js";
import type { OperationRepo } from "./repos/operation-repo.js";
import type { ProjectRepo } from "./repos/project-repo.js";
import type { TokenRepo } from "./repos/token-repo.js";
import type { UsageRepo } from "./repos/usage-repo.js";
import type { Database } from "./schema.js";

/** The repositories, all bound to one executor (the database or an open transaction). */
export interface Repos {
  readonly projects: ProjectRepo;
  readonly tokens: TokenRepo;
  readonly files: FileRepo;
  readonly images: ImageRepo;
  readonly operations: OperationRepo;
  readonly leases: LeaseRepo;
  readonly gc: GcRepo;
  readonly usage: UsageRepo;
}

/**
 * The single source of truth for names, references and state. Backends differ only in how they
 * open a Kysely instance and run migrations; repository code is shared across dialects.
 */
export interface MetadataStore extends Repos {
  /** Runs `fn` in one write transaction; everything in it commits or nothing does. */
  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
  /** Escape hatch for repositories added by other subsystems (same dialect-neutral Kysely). */
  readonly db: Kysely<Database>;
  close(): Promise<void>;
}
