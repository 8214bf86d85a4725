/**
 * Initial schema. Dialect-neutral subset on purpose (text ids, integer epoch-ms times, JSON as
 * text) so a PostgreSQL migration can mirror it and the same repository code runs on both.
 */
export const sql = `
CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  limits TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  hash TEXT NOT NULL UNIQUE,
  admin INTEGER NOT NULL DEFAULT 0,
  permissions TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);

CREATE TABLE files (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (project_id, sha256)
);
CREATE INDEX files_by_project_time ON files (project_id, created_at DESC, id DESC);

CREATE TABLE layers (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  chain_id TEXT,
  size INTEGER NOT NULL,
  entries INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX layers_by_chain_id ON layers (chain_id) WHERE chain_id IS NOT NULL;

CREATE TABLE images (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  parent_id TEXT REFERENCES images(id),
  layer_id TEXT REFERENCES layers(id),
  mount_chain TEXT NOT NULL,
  depth INTEGER NOT NULL,
  env TEXT,
  operation_id TEXT,
  size INTEGER NOT NULL DEFAULT 0,
  source TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX images_by_project_time ON images (project_id, created_at DESC, id DESC);
CREATE INDEX images_by_parent ON images (parent_id);

CREATE TABLE tags (
  project_id TEXT NOT NULL REFERENCES projects(id),
  tag TEXT NOT NULL,
  image_id TEXT NOT NULL REFERENCES images(id),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, tag)
);
CREATE INDEX tags_by_image ON tags (image_id);

CREATE TABLE operations (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  metadata TEXT NOT NULL,
  image_id TEXT,
  result_image_id TEXT,
  result_tag TEXT,
  image_size INTEGER NOT NULL DEFAULT 0,
  consumed_cpu REAL NOT NULL DEFAULT 0,
  consumed_memory INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER
);
CREATE INDEX operations_by_project_time ON operations (project_id, created_at DESC, id DESC);
CREATE INDEX operations_by_status ON operations (status, created_at);

CREATE TABLE operation_events (
  operation_id TEXT NOT NULL REFERENCES operations(id),
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  spid INTEGER,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (operation_id, seq)
);
`;
