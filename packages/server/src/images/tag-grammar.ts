import { invalidArgument } from "../core/errors.js";

/** The tag grammar as a pattern source (request schemas use it). */
export const TAG_PATTERN = "[A-Za-z0-9_-]+(?:[:/.][A-Za-z0-9_-]+)*";
const TAG_RE = new RegExp(`^${TAG_PATTERN}$`);

/** Tags: `a-z 0-9 _ -` words joined by `:` `/` `.`, at most 256 characters, case-sensitive. */
export function validateTag(tag: unknown): string {
  if (typeof tag !== "string" || tag.length === 0) throw invalidArgument("tag must be a non-empty string");
  if (tag.length > 256) throw invalidArgument("tag must be at most 256 characters");
  if (!TAG_RE.test(tag)) {
    throw invalidArgument(
      `invalid tag ${JSON.stringify(tag.slice(0, 80))}: use letters, digits, "_" and "-" separated by ":", "/" or "."`,
    );
  }
  return tag;
}
