/** The API shapes the console reads (the subset it uses; servers may send more fields). */

export interface Whoami {
  token_uuid: string;
  token_expiration: number | null;
  project: string;
  permissions: Record<string, boolean>;
  limits: Record<string, number>;
  operations_stat: Record<string, number>;
}

export interface Image {
  uuid: string;
  tag: string | null;
  created_at: string;
  operation_uuid: string | null;
  parent_uuid: string | null;
  size: number;
  parent_deleted?: boolean;
}

export interface OperationSummary {
  uuid: string;
  kind: string;
  status: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  duration: number;
  image_uuid: string | null;
  result_image_uuid: string | null;
}

export interface Operation extends OperationSummary {
  metadata: Record<string, unknown>;
  result: { image: string | null; tag: string | null };
}

/** One entry of `GET /v1/inspect/{uuid}/list`. */
export interface FileEntry {
  path: string;
  size: number;
  mode: number;
  owner: string;
  group: string;
  mtime: number;
  is_dir: boolean;
  is_regular: boolean;
  is_symlink: boolean;
  symlink_to: string;
}
