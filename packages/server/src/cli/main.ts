import { Command, CommanderError } from "commander";
import { isAppError } from "../core/errors.js";
import { registerAdminCommands } from "./admin-commands.js";
import { registerDoctorCommand } from "./doctor-command.js";
import { registerGcCommand } from "./gc-command.js";
import { registerImagesCommands } from "./images-commands.js";
import { registerSecretCommands } from "./secret-commands.js";
import { registerServeCommand } from "./serve-command.js";
import { registerUsageCommand } from "./usage-command.js";

/** `contree-server` entry point; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command("contree-server")
    .description("ConTree-compatible sandbox server and its admin commands")
    .exitOverride()
    .showHelpAfterError();
  registerServeCommand(program);
  registerAdminCommands(program);
  registerDoctorCommand(program);
  registerImagesCommands(program);
  registerGcCommand(program);
  registerUsageCommand(program);
  registerSecretCommands(program);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const msg = isAppError(err) ? err.message : err instanceof Error ? err.message : String(err);
    process.stderr.write(`contree-server: ${msg}\n`);
    return isAppError(err) && err.kind === "invalid_argument" ? 2 : 1;
  }
}
