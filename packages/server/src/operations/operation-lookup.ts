import { notFound } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { OperationKind, OperationRecord, OperationRepo } from "../metadata/repos/operation-repo.js";

/**
 * The project's operation named by an id taken from a request. A malformed id, an unknown one,
 * another project's and (with `kind`) one of another kind are the same 404: a caller learns
 * nothing about operations that are not theirs.
 */
export async function findOperation(
  operations: Pick<OperationRepo, "get">,
  projectId: string,
  rawId: string,
  kind?: OperationKind,
): Promise<OperationRecord> {
  const id = rawId.toLowerCase();
  const op = isUuid(id) ? await operations.get(id, projectId) : undefined;
  if (!op || (kind !== undefined && op.kind !== kind)) throw notFound("operation not found");
  return op;
}
