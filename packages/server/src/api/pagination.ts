import { Type } from "@sinclair/typebox";
import { parseTimeBound } from "../core/time.js";
import type { PageQuery } from "../metadata/repos/page.js";

/** Largest offset: far beyond any real listing, well inside SQLite's 64-bit integers. */
const MAX_OFFSET = 1_000_000_000;

export const PageQuerySchema = {
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 1000,
      description: "page size, 1..1000 (default 100)",
      "x-error": "limit must be between 1 and 1000",
    }),
  ),
  offset: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: MAX_OFFSET,
      description: `rows to skip, 0..${MAX_OFFSET} (default 0)`,
      "x-error": `offset must be an integer between 0 and ${MAX_OFFSET}`,
    }),
  ),
  since: Type.Optional(
    Type.String({
      maxLength: 64,
      description: "created at or after: ISO-8601, or a duration before now (15m, 2h, 3d)",
    }),
  ),
  until: Type.Optional(
    Type.String({ maxLength: 64, description: "created at or before: ISO-8601, or a duration before now" }),
  ),
};

// Moved to params.ts; re-exported until the routes outside this area import it from there.

/** The page a query asks for; limit and offset were already range-checked by PageQuerySchema. */
export function parsePage(q: {
  limit?: number | undefined;
  offset?: number | undefined;
  since?: string | undefined;
  until?: string | undefined;
}): PageQuery {
  const now = Date.now();
  return {
    limit: q.limit ?? 100,
    offset: q.offset ?? 0,
    since: q.since === undefined || q.since === "" ? undefined : parseTimeBound(q.since, "since", now),
    until: q.until === undefined || q.until === "" ? undefined : parseTimeBound(q.until, "until", now),
  };
}

/** Flag query params are modelled as "", "0" or "1" on the wire. */
export const FlagSchema = Type.Optional(
  Type.String({ maxLength: 16, description: 'flag: present and not "0" means true' }),
);

export const ErrorSchema = Type.Object(
  { error: Type.String(), status: Type.Integer() },
  { $id: "Error", description: "Error body of every non-2xx JSON response" },
);
