/**
 * Test-only: the crash test names a point of the pass in this variable and the pass kills its
 * own process there with SIGKILL, as a power cut or OOM kill would. Unset in production.
 */
export const CRASH_ENV = "CONTREE_TEST_GC_CRASH_AT";

export function crashPoint(name: string): void {
  if (process.env[CRASH_ENV] === name) process.kill(process.pid, "SIGKILL");
}
