/**
 * Project secrets (issue 16 §4): one row per project and name, the value sealed with
 * AES-256-GCM (`secrets/secret-cipher.ts`); `key_id` names the key that sealed it, so a server
 * started with another key says so instead of failing to open it. `hosts` (JSON array) are the
 * hosts header mode may send the value to; `allow_env` whether a run may have the value itself.
 */
export const sql = `
CREATE TABLE secrets (
  project_id TEXT NOT NULL REFERENCES projects(id),
  name TEXT NOT NULL,
  sealed BLOB NOT NULL,
  key_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  hosts TEXT NOT NULL DEFAULT '[]',
  allow_env INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_used_at INTEGER,
  PRIMARY KEY (project_id, name)
);
`;
