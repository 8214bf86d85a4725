/**
 * Storage lifecycle (issue 12): images can be deleted (a tombstone keeps lineage readable while
 * children live), images and files record when they were last used (retention), and leases
 * record what in-flight work holds (garbage collection respects them, durably).
 */
export const sql = `
ALTER TABLE images ADD COLUMN deleted_at INTEGER;
ALTER TABLE images ADD COLUMN last_used_at INTEGER;
CREATE INDEX images_live_by_use ON images (deleted_at, last_used_at);

ALTER TABLE files ADD COLUMN last_used_at INTEGER;

CREATE TABLE leases (
  id TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  kind TEXT NOT NULL,
  project_id TEXT,
  image_ids TEXT NOT NULL DEFAULT '[]',
  layer_ids TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX leases_by_expiry ON leases (expires_at);
`;
