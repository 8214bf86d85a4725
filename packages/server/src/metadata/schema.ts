import type { Kysely } from "kysely";

/** Row types of the metadata database, shared by every dialect (Kysely table interfaces). */
export interface ProjectsTable {
  id: string;
  name: string;
  limits: string;
  created_at: number;
}

export interface TokensTable {
  id: string;
  project_id: string;
  hash: string;
  admin: number;
  permissions: string;
  description: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  /** Epoch ms, refreshed at most once a minute (auth/principal.ts). */
  last_used_at: number | null;
}

export interface FilesTable {
  id: string;
  project_id: string;
  sha256: string;
  size: number;
  created_at: number;
  updated_at: number;
  /** Last time a run named it (retention clock; null: never since it was uploaded). */
  last_used_at: number | null;
}

export interface LayersTable {
  id: string;
  kind: string;
  chain_id: string | null;
  size: number;
  entries: number;
  created_at: number;
}

export interface ImagesTable {
  id: string;
  project_id: string;
  parent_id: string | null;
  layer_id: string | null;
  mount_chain: string;
  depth: number;
  env: string | null;
  operation_id: string | null;
  size: number;
  source: string | null;
  created_at: number;
  /** Set when the image was deleted or expired: invisible to the API, kept while lineage needs it. */
  deleted_at: number | null;
  /** Last run from it, inspect of it or child created (retention clock; null: use created_at). */
  last_used_at: number | null;
}

export interface TagsTable {
  project_id: string;
  tag: string;
  image_id: string;
  updated_at: number;
}

export interface OperationsTable {
  id: string;
  project_id: string;
  kind: string;
  status: string;
  error: string | null;
  metadata: string;
  image_id: string | null;
  result_image_id: string | null;
  result_tag: string | null;
  image_size: number;
  consumed_cpu: number;
  consumed_memory: number;
  cancel_requested: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface OperationEventsTable {
  operation_id: string;
  seq: number;
  ts: number;
  spid: number | null;
  type: string;
  data: string;
}

export interface LeasesTable {
  id: string;
  /** Who holds it (a server process or an admin command), for logs and `gc --dry-run`. */
  holder: string;
  /** What holds it: run, instance, import, inspect, flatten, … */
  kind: string;
  project_id: string | null;
  /** JSON arrays: the images (with their whole mount chains) and the layers it keeps alive. */
  image_ids: string;
  layer_ids: string;
  created_at: number;
  /** Holders renew; a lease whose holder died stops protecting anything at this time. */
  expires_at: number;
}

export interface SecretsTable {
  project_id: string;
  name: string;
  /** Version byte, IV, GCM tag, ciphertext (secrets/secret-cipher.ts). */
  sealed: Buffer;
  key_id: string;
  /** Bytes of the value. */
  size: number;
  /** JSON array of host patterns header mode may send the value to. */
  hosts: string;
  /** 1: a run may have the value in its environment. */
  allow_env: number;
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
}

export interface Database {
  projects: ProjectsTable;
  tokens: TokensTable;
  files: FilesTable;
  layers: LayersTable;
  images: ImagesTable;
  tags: TagsTable;
  operations: OperationsTable;
  operation_events: OperationEventsTable;
  leases: LeasesTable;
  secrets: SecretsTable;
}

/** What repositories run their queries on: the database or an open transaction. */
export type Executor = Kysely<Database>;
