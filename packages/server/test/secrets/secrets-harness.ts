import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger, type Logger } from "../../src/observability/logger.js";

/** A real logger (the server's redaction included) whose lines are kept for the leak checks. */
export function capturedLogger(): { logger: Logger; text(): string } {
  const lines: string[] = [];
  return {
    logger: createLogger("trace", { write: (s: string) => void lines.push(s) }),
    text: () => lines.join(""),
  };
}

/**
 * Every regular file under `root` (a data dir: database and WAL, layers, outputs, blobs, keys)
 * that holds one of `needles`; files over `maxBytes` (the scratch pool's sparse loop images, never
 * used by these runs, which stay on tmpfs) are listed apart so a test can see they exist.
 */
export async function filesHolding(
  root: string,
  needles: readonly Buffer[],
  maxBytes = 256 * 1024 * 1024,
): Promise<{ hits: string[]; skipped: string[]; read: number }> {
  const hits: string[] = [];
  const skipped: string[] = [];
  let read = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = join(dir, name);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile()) {
        if (st.size > maxBytes) {
          skipped.push(p);
          continue;
        }
        const data = await readFile(p).catch(() => undefined);
        if (!data) continue;
        read++;
        if (needles.some((n) => data.includes(n) || Buffer.from(name).includes(n))) hits.push(p);
      }
    }
  }
  return { hits, skipped, read };
}

/**
 * Waits until the run dirs of `ops` are gone: a run's teardown (which removes its bundle, where
 * an env-mode value sits while the run lives) finishes just after its result is stored.
 */
export async function runDirsGone(
  dataDir: string,
  ops: readonly string[],
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = new Set(await readdir(join(dataDir, "runs")).catch(() => [] as string[]));
    const still = ops.filter((id) => left.has(id));
    if (still.length === 0) return;
    if (Date.now() > until) throw new Error(`run dirs still there: ${still.join(", ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
