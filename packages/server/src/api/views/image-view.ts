import { Type } from "@sinclair/typebox";
import { isoMicros } from "../../core/time.js";
import type { ImageRecord } from "../../metadata/repos/image-repo.js";

export const ImageSchema = Type.Object(
  {
    uuid: Type.String(),
    tag: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    operation_uuid: Type.Union([Type.String(), Type.Null()]),
    parent_uuid: Type.Union([Type.String(), Type.Null()]),
    size: Type.Integer(),
    /** Extension: present (true) when `parent_uuid` names a deleted image (lineage keeps the id). */
    parent_deleted: Type.Optional(Type.Boolean()),
  },
  { $id: "Image", additionalProperties: true },
);

export function imageJson(img: ImageRecord, tag: string | null) {
  return {
    uuid: img.id,
    tag,
    created_at: isoMicros(img.createdAt),
    operation_uuid: img.operationId,
    parent_uuid: img.parentId,
    size: img.size,
    ...(img.parentDeleted === true ? { parent_deleted: true } : {}),
  };
}
