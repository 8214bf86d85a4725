/**
 * Checks on the raw request URL made before routing, auth or parsing: every parameter of every
 * route is then free of the classes below, whatever its schema says. A URL that fails gets a 400
 * (the message never echoes the URL).
 */
import type { Socket } from "node:net";
import { type AppError, invalidArgument } from "../core/errors.js";

/** Why the URL is refused, or undefined when it is fine. */
export function badRequestUrl(url: string): string | undefined {
  let decoded: string;
  try {
    // Throws on a "%" not followed by two hex digits and on bytes that are not UTF-8
    // (overlong forms, lone surrogates, truncated sequences).
    decoded = decodeURIComponent(url);
  } catch {
    return "the request URL is not valid percent-encoded UTF-8";
  }
  if (decoded.includes("\u0000")) return "the request URL contains a NUL character";
  return undefined;
}

/** Fastify's own URL errors (bad encoding in the path, a path parameter over the length limit). */
export function frameworkError(err: Error & { code?: string }): AppError {
  return err.code === "FST_ERR_MAX_PARAM_LENGTH"
    ? invalidArgument("a path parameter is too long")
    : invalidArgument("the request URL is not valid percent-encoded UTF-8");
}

/** Status, reason phrase and message for the parser's refusals that are not plain syntax errors. */
const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string, string]>> = {
  HPE_HEADER_OVERFLOW: [
    431,
    "Request Header Fields Too Large",
    "the request headers (URL included) are too large",
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "the request was not received in time"],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, "Payload Too Large", "the chunk extensions are too large"],
};

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers over the size limit,
 * malformed request lines): answered with the usual error body, then the connection is closed.
 */
export function onClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, message] = (err.code !== undefined && CLIENT_ERRORS[err.code]) || [
    400,
    "Bad Request",
    "malformed request",
  ];
  // Same wire shape as every other error; these statuses have no AppError kind of their own.
  const body = JSON.stringify({ error: message, status });
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  socket.destroy();
}
