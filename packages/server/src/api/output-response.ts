import type { FastifyReply, FastifyRequest } from "fastify";
import { jsonStream } from "../outputs/json-stream.js";
import { containsOutputRef } from "../outputs/output-ref.js";
import type { OutputStore } from "../outputs/output-store.js";
import { reprJson } from "../outputs/repr-chunks.js";
import type { HeavyGate } from "./heavy-gate.js";
import { principalOf } from "./request-context.js";
import { sendStream } from "./stream-reply.js";

interface OutputResponseDeps {
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
  // A HEAD reads nothing (headers only): no slot.
  if (req.method !== "HEAD") d.gate.hold(principalOf(req), reply);
  return sendStream(
    req,
    reply,
    "application/json; charset=utf-8",
    jsonStream(doc, (ref) => reprJson(d.outputs, operationId, ref)),
  );
}
