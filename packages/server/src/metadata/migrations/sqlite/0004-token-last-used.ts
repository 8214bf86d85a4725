/** When each token was last used (admin API and console): written at most once a minute per token. */
export const sql = `
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
`;
