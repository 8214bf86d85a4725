import { pipeline, Readable } from "node:stream";
import { createGzip } from "node:zlib";
import type { FastifyReply, FastifyRequest } from "fastify";
import { acceptsGzip } from "./compression.js";

/**
 * Sends a body produced piece by piece, with backpressure: each piece is made only when the
 * socket wants more, so a large document never exists as one string and the event loop is free
 * between pieces. gzip when the client asks (chunked either way, no Content-Length).
 */
export function sendStream(
  req: FastifyRequest,
  reply: FastifyReply,
  contentType: string,
  pieces: Iterable<string> | AsyncIterable<string>,
): FastifyReply {
  void reply.type(contentType);
  // HEAD is answered with the headers alone: the body (stored output read and encoded) is never made.
  if (req.method === "HEAD") return reply.send(Readable.from([]));
  const body = Readable.from(pieces, { objectMode: false, highWaterMark: 64 * 1024 });
  const ended = (err: unknown) => {
    if (err) req.log.warn({ err }, "streamed response ended early");
  };
  if (acceptsGzip(String(req.headers["accept-encoding"] ?? ""))) {
    void reply.header("content-encoding", "gzip").header("vary", "accept-encoding");
    const gz = createGzip();
    pipeline(body, gz, ended);
    return reply.send(gz);
  }
  body.once("error", ended);
  return reply.send(body);
}

/** `{"path":…,"files":[…]}` in pieces of `perPiece` items (the text JSON.stringify would give). */
export function* listingJson(
  listing: { path: string; files: readonly object[] },
  perPiece = 500,
): Generator<string> {
  yield `{"path":${JSON.stringify(listing.path)},"files":[`;
  for (let i = 0; i < listing.files.length; i += perPiece) {
    const items = listing.files.slice(i, i + perPiece).map((f) => JSON.stringify(f));
    yield `${i === 0 ? "" : ","}${items.join(",")}`;
  }
  yield "]}";
}
