import pino, { type Logger } from "pino";
import type { LogLevel } from "../config/config.js";

export type { Logger };

/** Structured JSON logs on stdout; secrets in headers are never written. */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "contree-server" },
    redact: {
      paths: ["req.headers.authorization", "headers.authorization", "*.password", "*.token"],
      censor: "<redacted>",
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
