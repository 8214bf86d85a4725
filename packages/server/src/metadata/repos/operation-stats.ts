import type { Executor } from "../schema.js";

/** Number of the project's operations per status, e.g. `{"EXECUTING": 2, "SUCCESS": 10}`. */
export async function operationStats(db: Executor, projectId: string): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom("operations")
    .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
    .where("project_id", "=", projectId)
    .groupBy("status")
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}
