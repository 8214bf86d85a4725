import { Type } from "@sinclair/typebox";
import { invalidArgument } from "../core/errors.js";
import { parseTimeBound } from "../core/time.js";
import type { PageQuery } from "../metadata/repos/page.js";

export const PageQuerySchema = {
  limit: Type.Optional(Type.Integer({ description: "page size, 1..1000 (default 100)" })),
  offset: Type.Optional(Type.Integer({ description: "rows to skip (default 0)" })),
  since: Type.Optional(
    Type.String({ description: "created at or after: ISO-8601, or a duration before now (15m, 2h, 3d)" }),
  ),
  until: Type.Optional(
    Type.String({ description: "created at or before: ISO-8601, or a duration before now" }),
  ),
};

export function parsePage(q: {
  limit?: number | undefined;
  offset?: number | undefined;
  since?: string | undefined;
  until?: string | undefined;
}): PageQuery {
  const limit = q.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw invalidArgument("limit must be between 1 and 1000");
  const offset = q.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw invalidArgument("offset must be a non-negative integer");
  const now = Date.now();
  return {
    limit,
    offset,
    since: q.since === undefined || q.since === "" ? undefined : parseTimeBound(q.since, "since", now),
    until: q.until === undefined || q.until === "" ? undefined : parseTimeBound(q.until, "until", now),
  };
}

/** Flag query params are modelled as "", "0" or "1" on the wire. */
export const FlagSchema = Type.Optional(Type.String({ description: 'flag: present and not "0" means true' }));

export const ErrorSchema = Type.Object(
  { error: Type.String(), status: Type.Integer() },
  { $id: "Error", description: "Error body of every non-2xx JSON response" },
);
