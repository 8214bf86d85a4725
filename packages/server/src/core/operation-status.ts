/** An operation's lifecycle (PENDING → ASSIGNED → EXECUTING → terminal) and its kinds. */
export const OPERATION_STATUSES = [
  "PENDING",
  "ASSIGNED",
  "EXECUTING",
  "SUCCESS",
  "FAILED",
  "CANCELLED",
] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];
export const ACTIVE_STATUSES: readonly OperationStatus[] = ["PENDING", "ASSIGNED", "EXECUTING"];
export const TERMINAL_STATUSES: readonly OperationStatus[] = ["SUCCESS", "FAILED", "CANCELLED"];
export type OperationKind = "instance" | "image_import";
