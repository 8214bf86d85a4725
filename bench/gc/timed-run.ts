/**
 * One run timed the way bench/run-latency times it: POST /v1/instances → the `completion` event
 * read from the followed event stream, on the client's wall clock.
 */
import type { BenchServer } from "./server.js";

export interface RunResult {
  /** Wall-clock ms (epoch) of the POST and of the completion read: to match runs with GC passes. */
  start: number;
  end: number;
  ms: number;
  /** `gone` when the image was refused as unknown (expired or deleted under the client). */
  status: string;
  exitCode: number;
  error: string | null;
  image: string | null;
}

/** SUCCESS with exit 0: an operation can succeed while the runtime failed to start the command. */
export const ok = (r: RunResult): boolean => r.status === "SUCCESS" && r.exitCode === 0;

export const why = (r: RunResult): string =>
  `${r.status}, exit ${r.exitCode}${r.error ? `, error: ${r.error}` : ""}`;

export async function timedRun(t: BenchServer, body: Record<string, unknown>): Promise<RunResult> {
  const start = Date.now();
  const t0 = performance.now();
  const r = await t.api("/v1/instances", { method: "POST", json: body });
  if (r.status === 404 || r.status === 410) {
    const text = await r.text();
    return {
      start,
      end: Date.now(),
      ms: performance.now() - t0,
      status: "gone",
      exitCode: NaN,
      error: text,
      image: null,
    };
  }
  if (r.status !== 202) throw new Error(`spawn answered ${r.status}: ${await r.text()}`);
  const { uuid } = (await r.json()) as { uuid: string };
  const ev = await t.api(`/v1/operations/${uuid}/events?follow=1`, {
    headers: { "accept-encoding": "identity" },
  });
  const reader = ev.body?.getReader();
  if (!reader) throw new Error("no event stream");
  const dec = new TextDecoder();
  let text = "";
  let from = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (value) text += dec.decode(value, { stream: true });
    const i = text.indexOf("event: completion", from);
    if (i >= 0 && text.indexOf("\n\n", i) >= 0) break;
    // Only the tail can hold a frame that is still arriving.
    from = Math.max(0, text.length - 64);
    if (done) throw new Error(`event stream ended without completion: ${text.slice(-300)}`);
  }
  const ms = performance.now() - t0;
  const end = Date.now();
  await reader.cancel();
  const data = (type: string) => {
    const line = new RegExp(`event: ${type}\n(?:id: .*\n)?data: (.*)\n`).exec(text)?.[1];
    return (JSON.parse(line ?? "{}") as { data?: Record<string, unknown> }).data ?? {};
  };
  const completion = data("completion");
  const exit = data("exit");
  return {
    start,
    end,
    ms,
    status: String(completion["status"] ?? "?"),
    exitCode: typeof exit["code"] === "number" ? exit["code"] : Number.NaN,
    error: typeof completion["error"] === "string" ? completion["error"] : null,
    image: (completion["result_image_uuid"] as string | null | undefined) ?? null,
  };
}
