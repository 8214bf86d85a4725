/**
 * ANSI escape handling for sandbox output: SGR colour/weight codes become segment styles, every
 * other escape sequence (cursor moves, erases, OSC titles, hyperlinks) is dropped, so what a
 * sandbox prints can only ever be plain text with a style. Chunks may split a sequence: the
 * parser keeps the incomplete tail until the next chunk.
 */

/** A colour: 0–255 (the xterm palette) or "#rrggbb" (24-bit). */
export type AnsiColour = number | string;

export interface SgrState {
  fg?: AnsiColour;
  bg?: AnsiColour;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

export interface Segment {
  text: string;
  style: SgrState;
}

/** A sequence left incomplete longer than this is not one: it is dropped, not waited for. */
const MAX_PENDING = 256;
// Control characters other than TAB and LF are not shown (CR is dropped: no cursor).
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
const CONTROL = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g;

const hex2 = (n: number) => Math.max(0, Math.min(255, n)).toString(16).padStart(2, "0");

function applySgr(state: SgrState, params: string): SgrState {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  let s: SgrState = { ...state };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] ?? 0;
    if (!Number.isFinite(c)) continue;
    if (c === 0) s = {};
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) {
      delete s.bold;
      delete s.dim;
    } else if (c === 23) delete s.italic;
    else if (c === 24) delete s.underline;
    else if (c === 27) delete s.inverse;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) delete s.fg;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) delete s.bg;
    else if (c === 38 || c === 48) {
      const mode = codes[i + 1];
      let colour: AnsiColour | undefined;
      if (mode === 5 && codes[i + 2] !== undefined) {
        const n = codes[i + 2] ?? 0;
        if (n >= 0 && n <= 255) colour = n;
        i += 2;
      } else if (mode === 2 && codes[i + 4] !== undefined) {
        colour = `#${hex2(codes[i + 2] ?? 0)}${hex2(codes[i + 3] ?? 0)}${hex2(codes[i + 4] ?? 0)}`;
        i += 4;
      } else break; // malformed: ignore the rest of this sequence
      if (colour !== undefined) {
        if (c === 38) s.fg = colour;
        else s.bg = colour;
      }
    }
  }
  return s;
}

export class AnsiParser {
  private state: SgrState = {};
  private pending = "";

  /** The styled text of the next chunk (segments with empty text are never returned). */
  push(chunk: string): Segment[] {
    const text = this.pending + chunk;
    this.pending = "";
    const out: Segment[] = [];
    const emit = (t: string) => {
      const clean = t.replace(CONTROL, "");
      if (clean !== "") out.push({ text: clean, style: this.state });
    };
    let i = 0;
    while (i < text.length) {
      const esc = text.indexOf("\x1b", i);
      if (esc < 0) {
        emit(text.slice(i));
        break;
      }
      emit(text.slice(i, esc));
      const next = text[esc + 1];
      if (next === undefined) {
        this.keep(text.slice(esc));
        break;
      }
      if (next === "[") {
        // CSI: parameter/intermediate bytes, then one final byte in @–~.
        let j = esc + 2;
        while (j < text.length && !/[@-~]/.test(text[j]!)) j++;
        if (j >= text.length) {
          this.keep(text.slice(esc));
          break;
        }
        if (text[j] === "m") {
          const params = text.slice(esc + 2, j);
          if (/^[\d;:]*$/.test(params)) this.state = applySgr(this.state, params);
        }
        i = j + 1;
      } else if (next === "]") {
        // OSC: up to BEL or ESC \ (titles, hyperlinks): dropped whole.
        const bel = text.indexOf("\x07", esc + 2);
        const st = text.indexOf("\x1b\\", esc + 2);
        const ends = [bel < 0 ? -1 : bel + 1, st < 0 ? -1 : st + 2].filter((n) => n > 0);
        if (ends.length === 0) {
          this.keep(text.slice(esc));
          break;
        }
        i = Math.min(...ends);
      } else i = esc + 2; // a two-byte escape (ESC c, ESC =, …): dropped
    }
    return out;
  }

  private keep(tail: string): void {
    this.pending = tail.length > MAX_PENDING ? "" : tail;
  }
}

/** The 256-colour palette entry n ≥ 16 as "#rrggbb" (0–15 are CSS classes, themeable). */
export function paletteColour(n: number): string {
  if (n < 232) {
    const k = n - 16;
    const level = (v: number) => (v === 0 ? 0 : 55 + v * 40);
    return `#${hex2(level(Math.floor(k / 36)))}${hex2(level(Math.floor(k / 6) % 6))}${hex2(level(k % 6))}`;
  }
  const g = 8 + (n - 232) * 10;
  return `#${hex2(g)}${hex2(g)}${hex2(g)}`;
}
