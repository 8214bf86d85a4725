/** Host tools whose failure is the server's own error (the runner itself lives in sys/). */
import { internal } from "../core/errors.js";
import type { CommandOptions, CommandResult } from "../sys/run-command.js";
import { runCommand } from "../sys/run-command.js";

export { type CommandOptions, type CommandResult, runCommand } from "../sys/run-command.js";

/** Like runCommand but a non-zero exit is an internal error (message without host detail). */
export async function mustRun(
  file: string,
  args: readonly string[],
  what: string,
  o: CommandOptions = {},
): Promise<CommandResult> {
  const r = await runCommand(file, args, o);
  if (r.code !== 0) {
    throw internal(`${what} failed`, {
      cause: new Error(`${file} ${args.join(" ")} → ${r.code ?? r.signal}: ${r.stderr.trim()}`),
    });
  }
  return r;
}
