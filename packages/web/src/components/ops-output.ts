/**
 * The live output pane's model: stdout/stderr chunks (StreamRepr, ASCII or base64) are decoded
 * per stream (a UTF-8 character split across chunks survives), styled by the ANSI parser and
 * appended to the DOM as spans holding text nodes only: sandbox output is never parsed as HTML.
 * The DOM keeps at most `cap` lines; older lines are removed and counted.
 */
import { type AnsiColour, AnsiParser, paletteColour, type SgrState } from "./ops-ansi.js";

/** Lines kept in the DOM: enough to read, bounded so a 1 MiB log cannot stall the tab. */
export const OUTPUT_LINE_CAP = 5000;

export type StreamName = "stdout" | "stderr";

/** A StreamRepr (`{value, encoding}`) as bytes, or undefined when it is not one. */
export function reprBytes(repr: unknown): Uint8Array | undefined {
  if (repr === null || typeof repr !== "object") return undefined;
  const r = repr as { value?: unknown; encoding?: unknown };
  if (typeof r.value !== "string") return undefined;
  if (r.encoding === "base64") {
    try {
      const bin = atob(r.value);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return bytes;
    } catch {
      return undefined;
    }
  }
  return new TextEncoder().encode(r.value);
}

function colourClass(
  prefix: string,
  c: AnsiColour | undefined,
  el: HTMLElement,
  prop: "color" | "backgroundColor",
) {
  if (c === undefined) return "";
  if (typeof c === "number" && c < 16) return ` ${prefix}-${c}`;
  // Through the CSSOM, which the console's CSP (no inline styles) allows.
  el.style[prop] = typeof c === "number" ? paletteColour(c) : c;
  return "";
}

function styledSpan(text: string, s: SgrState, stream: StreamName): HTMLElement {
  const el = document.createElement("span");
  let cls = stream === "stderr" ? "ol-err" : "";
  const fg = s.inverse ? s.bg : s.fg;
  const bg = s.inverse ? (s.fg ?? 7) : s.bg;
  cls += colourClass("ansi-fg", fg, el, "color");
  cls += colourClass("ansi-bg", bg, el, "backgroundColor");
  if (s.bold) cls += " ansi-bold";
  if (s.dim) cls += " ansi-dim";
  if (s.italic) cls += " ansi-italic";
  if (s.underline) cls += " ansi-underline";
  const c = cls.trim();
  if (c !== "") el.className = c;
  el.textContent = text;
  return el;
}

export class OutputBuffer {
  private readonly decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  private readonly parsers = { stdout: new AnsiParser(), stderr: new AnsiParser() };
  private current: HTMLElement | undefined;
  private lines = 0;
  /** Lines removed from the top to keep the DOM within the cap. */
  dropped = 0;
  /** Bytes received per stream. */
  readonly bytes = { stdout: 0, stderr: 0 };

  constructor(
    private readonly root: HTMLElement,
    private readonly cap = OUTPUT_LINE_CAP,
  ) {}

  /** Appends one chunk; returns false when it was not a StreamRepr. */
  append(stream: StreamName, repr: unknown): boolean {
    const bytes = reprBytes(repr);
    if (bytes === undefined) return false;
    this.bytes[stream] += bytes.length;
    const text = this.decoders[stream].decode(bytes, { stream: true });
    for (const seg of this.parsers[stream].push(text)) {
      const parts = seg.text.split("\n");
      for (let i = 0; i < parts.length; i++) {
        if (i > 0) this.newLine();
        const part = parts[i]!;
        if (part === "") continue;
        if (this.current === undefined) this.newLine();
        this.current!.appendChild(styledSpan(part, seg.style, stream));
      }
    }
    return true;
  }

  /** Ends a line: the next text starts a new one. */
  private newLine(): void {
    const line = document.createElement("div");
    line.className = "ol";
    this.root.appendChild(line);
    this.current = line;
    this.lines++;
    while (this.lines > this.cap && this.root.firstChild !== null) {
      this.root.removeChild(this.root.firstChild);
      this.lines--;
      this.dropped++;
    }
  }
}
