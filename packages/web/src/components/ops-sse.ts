/** The text/event-stream framing (the subset the events route sends), free of DOM and fetch. */

export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

/** Splits SSE text into frames; returns the complete frames and keeps the rest. */
export class SseParser {
  private buffer = "";
  push(text: string): SseFrame[] {
    this.buffer += text;
    const frames: SseFrame[] = [];
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.buffer);
      if (m === null) break;
      const raw = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const frame: SseFrame = { data: "" };
      const data: string[] = [];
      for (const line of raw.split(/\r?\n/)) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "id") frame.id = value;
        else if (field === "event") frame.event = value;
      }
      if (data.length === 0) continue;
      frame.data = data.join("\n");
      frames.push(frame);
    }
    return frames;
  }
}
