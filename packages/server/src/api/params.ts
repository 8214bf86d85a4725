/** Schemas of path and query parameters shared by several routes. */
import { Type } from "@sinclair/typebox";

/** A path inside an image (PATH_MAX). */
export const ImagePathSchema = Type.String({
  maxLength: 4096,
  description: "absolute path inside the image",
});
/** A tag, or a tag prefix in filters. */
export const TagTextSchema = Type.String({ maxLength: 256 });
/** An object id in a path (UUIDs; anything else is a 404). */
export const IdParamSchema = Type.String({ maxLength: 64, description: "UUID" });
