/**
 * Incremental parser of a `text/event-stream` body that also checks the frame contract of
 * §2.6: every event frame is `id: N`, `event: TYPE` and ONE `data:` line carrying the whole
 * envelope `{id, ts, spid, type, data}` whose id/type agree with the header lines. Blocks made of
 * comment lines only (`: keepalive`) are reported as comments; `event: sse_error` may carry plain
 * text and no id.
 */
import { checkEvent, type OperationEventT } from "./client-models.js";

export type SseItem =
  | { kind: "event"; event: OperationEventT; raw: string }
  | { kind: "comment"; text: string }
  | { kind: "error"; text: string };

export class SseFrameParser {
  private pending = "";
  readonly violations: string[] = [];

  /** Feeds decoded text; returns the blocks completed by it. */
  push(text: string): SseItem[] {
    this.pending += text.replace(/\r\n?/g, "\n");
    const out: SseItem[] = [];
    for (;;) {
      const end = this.pending.indexOf("\n\n");
      if (end < 0) break;
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      const item = this.block(block);
      if (item) out.push(item);
    }
    return out;
  }

  /** Text after the last complete block (a stream must not end inside a frame). */
  get rest(): string {
    return this.pending;
  }

  private block(block: string): SseItem | undefined {
    const lines = block.split("\n").filter((l) => l !== "");
    if (lines.length === 0) return undefined;
    const fields = lines.filter((l) => !l.startsWith(":"));
    if (fields.length === 0) return { kind: "comment", text: lines.map((l) => l.slice(1).trim()).join("\n") };
    const get = (name: string) =>
      fields.filter((l) => l.startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).replace(/^ /, ""));
    const ids = get("id");
    const types = get("event");
    const datas = get("data");
    const unknown = fields.filter((l) => !/^(id|event|data|retry):/.test(l));
    const bad = (msg: string) => {
      this.violations.push(`sse frame ${JSON.stringify(block.slice(0, 200))}: ${msg}`);
    };
    if (unknown.length > 0) bad(`unknown field lines ${JSON.stringify(unknown)}`);
    if (types.length === 1 && types[0] === "sse_error") return { kind: "error", text: datas.join("\n") };
    if (ids.length !== 1) bad(`expected one id: line, got ${ids.length}`);
    if (types.length !== 1) bad(`expected one event: line, got ${types.length}`);
    if (datas.length !== 1) bad(`expected one data: line, got ${datas.length}`);
    let event: OperationEventT;
    try {
      event = JSON.parse(datas.join("\n")) as OperationEventT;
    } catch {
      bad("data is not JSON");
      return undefined;
    }
    for (const v of checkEvent(event)) bad(v);
    if (ids[0] !== undefined && String(event.id) !== ids[0])
      bad(`id line ${ids[0]} != envelope id ${event.id}`);
    if (types[0] !== undefined && event.type !== types[0])
      bad(`event line ${types[0]} != envelope type ${event.type}`);
    return { kind: "event", event, raw: block };
  }
}
