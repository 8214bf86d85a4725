/**
 * Whether a process's terminal can be attached now, asked of the API before each attach: a
 * browser's WebSocket hides the status of a refused upgrade (it only sees code 1006), and a
 * refused upgrade is a console error, so the view finds out first, and explains a refusal in the
 * server's own words. A process is attachable from its `spawn` event on (the server registers it
 * before emitting that event), which the events stream filtered to the process delivers at once.
 */
import { type ApiClient, ApiError } from "../api/client.js";
import type { Operation } from "../api/types.js";
import { SseParser } from "../components/ops-sse.js";
import { exitText } from "./term-protocol.js";

export type Readiness =
  | { kind: "ready" }
  /** The process or the run is over: nothing to attach to, ever. */
  | { kind: "ended"; message: string }
  /** Refused for good (token, not found, no terminal). */
  | { kind: "refused"; message: string }
  /** The server could not be asked (network): try again later. */
  | { kind: "unreachable"; message: string };

const ACTIVE = new Set(["PENDING", "ASSIGNED", "EXECUTING"]);

function refusal(err: unknown): Readiness {
  if (err instanceof ApiError) {
    if (err.status === 0) return { kind: "unreachable", message: "The server cannot be reached." };
    if (err.status === 401)
      return { kind: "refused", message: `The server refused this token (${err.message}).` };
    if (err.status === 403)
      return { kind: "refused", message: `This token may not do that (${err.message}).` };
    if (err.status === 404) return { kind: "refused", message: `Not found: ${err.message}.` };
    if (err.status >= 500)
      return { kind: "unreachable", message: `The server failed (${err.status}): ${err.message}` };
    return { kind: "refused", message: err.message };
  }
  throw err;
}

export async function checkProcess(
  client: ApiClient,
  opId: string,
  spid: number,
  signal: AbortSignal,
): Promise<Readiness> {
  const path = `/operations/${encodeURIComponent(opId)}`;
  try {
    const op = await client.json<Operation>(path, { signal });
    if (op.kind !== "instance") return { kind: "refused", message: "Only runs have terminals." };
    if (!ACTIVE.has(op.status)) return { kind: "ended", message: `The run has finished (${op.status}).` };
    if (spid === 1 && op.metadata["tty"] !== true)
      return { kind: "refused", message: "This run was started without a terminal (tty)." };
    if (spid > 1) {
      const r = await client.json<{ state?: Record<string, unknown> }>(`${path}/subprocesses/${spid}`, {
        signal,
      });
      const s = r.state ?? {};
      if (s["running"] === false)
        return {
          kind: "ended",
          message: exitText({
            exitCode: Number(s["exit_code"] ?? -1),
            signal: Number(s["signal"] ?? -1),
            timedOut: s["timed_out"] === true,
          }),
        };
    }
    const spawned = await spawnOf(client, path, spid, signal);
    if (spawned === "completed") return { kind: "ended", message: "The run has finished." };
    if (spawned === "no-tty")
      return { kind: "refused", message: `Process ${spid} was started without a terminal (tty).` };
    return { kind: "ready" };
  } catch (err) {
    if (signal.aborted) return { kind: "ended", message: "" };
    if (err instanceof ApiError) return refusal(err);
    return { kind: "unreachable", message: "The server cannot be reached." };
  }
}

/** Reads the process's events until its `spawn` (or the run's completion), then lets go of the stream. */
async function spawnOf(
  client: ApiClient,
  path: string,
  spid: number,
  signal: AbortSignal,
): Promise<"tty" | "no-tty" | "completed"> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  signal.addEventListener("abort", stop, { once: true });
  try {
    const res = await client.fetch(`${path}/events`, { query: { follow: 1, spid }, signal: ac.signal });
    if (res.body === null) throw new ApiError(0, "no event stream");
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new ApiError(0, "the event stream ended early");
      for (const f of parser.push(value)) {
        let e: { type?: unknown; spid?: unknown; data?: { tty?: unknown } };
        try {
          e = JSON.parse(f.data) as typeof e;
        } catch {
          continue;
        }
        if (e.type === "completion") return "completed";
        if (e.type === "spawn" && e.spid === spid) return e.data?.tty === true ? "tty" : "no-tty";
      }
    }
  } finally {
    signal.removeEventListener("abort", stop);
    ac.abort();
  }
}
