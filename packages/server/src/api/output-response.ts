import { pipeline, Readable } from "node:stream";
import { createGzip } from "node:zlib";
import type { FastifyReply, FastifyRequest } from "fastify";
import { jsonStream } from "../outputs/json-stream.js";
import { containsOutputRef } from "../outputs/output-ref.js";
import type { OutputStore } from "../outputs/output-store.js";
import { reprJson } from "../outputs/repr-chunks.js";
import { acceptsGzip } from "./compression.js";
import type { HeavyGate } from "./heavy-gate.js";
import { principalOf } from "./request-context.js";

export interface OutputResponseDeps {
  outputs: OutputStore;
  gate: HeavyGate;
}

/**
 * Sends a JSON document of an operation. Without references to stored output it is returned as
 * is (Fastify serialises it). With them it is a heavy request: it takes a gate slot and the text
 * is streamed with backpressure, the output read and encoded a bounded chunk at a time, so no
 * large string is ever built and memory per request stays small.
 */
export function sendWithOutputs<T>(
  d: OutputResponseDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  operationId: string,
  doc: T,
): T | FastifyReply {
  if (!containsOutputRef(doc)) return doc;
  d.gate.hold(principalOf(req), reply);
  const text = Readable.from(
    jsonStream(doc, (ref) => reprJson(d.outputs, operationId, ref)),
    { objectMode: false, highWaterMark: 64 * 1024 },
  );
  void reply.type("application/json; charset=utf-8");
  if (req.method !== "HEAD" && acceptsGzip(String(req.headers["accept-encoding"] ?? ""))) {
    void reply.header("content-encoding", "gzip").header("vary", "accept-encoding");
    const gz = createGzip();
    pipeline(text, gz, (err) => {
      if (err) req.log.warn({ err }, "streamed response ended early");
    });
    return reply.send(gz);
  }
  text.once("error", (err) => req.log.warn({ err }, "streamed response ended early"));
  return reply.send(text);
}
