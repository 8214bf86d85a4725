import pino, { type Logger } from "pino";
import type { LogLevel } from "../config/config.js";

export type { Logger };

/** Structured JSON logs on stdout; secrets in headers are never written. */
export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { service: "contree-server" },
    redact: {
      paths: ["req.headers.authorization", "headers.authorization", "*.password", "*.token"],
      censor: "<redacted>",
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
