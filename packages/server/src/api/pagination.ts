import { Type } from "@sinclair/typebox";
import { invalidArgument } from "../core/errors.js";
import { parseTimeBound } from "../core/time.js";
import type { PageQuery } from "../metadata/repos/page.js";

/** Largest offset: far beyond any real listing, well inside SQLite's 64-bit integers. */
export const MAX_OFFSET = 1_000_000_000;

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

/** A path inside an image (PATH_MAX). */
export const ImagePathSchema = Type.String({
  maxLength: 4096,
  description: "absolute path inside the image",
});
/** A tag, or a tag prefix in filters. */
export const TagTextSchema = Type.String({ maxLength: 256 });
/** An object id in a path (UUIDs; anything else is a 404). */
export const IdParamSchema = Type.String({ maxLength: 64, description: "UUID" });

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
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_OFFSET)
    throw invalidArgument(`offset must be an integer between 0 and ${MAX_OFFSET}`);
  const now = Date.now();
  return {
    limit,
    offset,
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
