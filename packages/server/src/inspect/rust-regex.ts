/**
 * Translates a pattern in Rust `regex` crate syntax (what ripgrep and ConTree's grep accept)
 * into a JavaScript RegExp with the `u` flag. Matching is done one line at a time, so `^`/`$`
 * are line anchors and `\A`/`\z` become them. What has no faithful JavaScript equivalent
 * (look-around and back-references, which Rust rejects too; nested classes and set operations;
 * unknown escapes and flags) is rejected with invalid_argument instead of being guessed.
 *
 * Node 20 has no inline flag groups, so `(?i)` that covers the whole pattern becomes the `i`
 * flag and scoped case-insensitivity (`(?i:ab)`, `a(?i)b`, `(?-i)`) is expanded letter by
 * letter (`[aA][bB]`).
 */
import { invalidArgument } from "../core/errors.js";
import type { WireRegex } from "./grep-matcher.js";

export type CaseMode = "sensitive" | "insensitive" | "smart";

const MAX_PATTERN = 16 * 1024;
const MAX_REPEAT = 1000;

interface Flags {
  i: boolean;
  s: boolean;
  x: boolean;
  U: boolean;
}

interface Pass {
  source: string;
  /** The case-insensitivity flag never changed after the start of the pattern. */
  uniformCase: boolean;
  /** A literal upper-case letter appears (ripgrep's smart case looks for one). */
  hasUpper: boolean;
}

/** Translate; throws invalid_argument with a public message for what cannot be translated. */
export function translateRustRegex(pattern: string, mode: CaseMode = "sensitive"): WireRegex {
  if (pattern.length > MAX_PATTERN) throw invalidArgument(`pattern longer than ${MAX_PATTERN} characters`);
  let insensitive = mode === "insensitive";
  if (mode === "smart") insensitive = !new Translator(pattern, false, true).run().hasUpper;
  const expanded = new Translator(pattern, insensitive, true).run();
  let out: WireRegex;
  if (expanded.uniformCase) {
    // One case mode for the whole pattern: let the engine fold case (faster, Unicode-complete).
    const t = new Translator(pattern, insensitive, false);
    const plain = t.run();
    out = { source: plain.source, flags: t.leadingInsensitive ? "iu" : "u" };
  } else {
    out = { source: expanded.source, flags: "u" };
  }
  try {
    new RegExp(out.source, out.flags);
  } catch {
    throw invalidArgument(`pattern ${JSON.stringify(pattern.slice(0, 200))} is not supported`);
  }
  return out;
}

function bad(pattern: string, why: string): never {
  throw invalidArgument(`invalid pattern ${JSON.stringify(pattern.slice(0, 200))}: ${why}`);
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\u{0}-\\u{7f}",
  blank: "\\u{9}\\u{20}",
  cntrl: "\\u{0}-\\u{1f}\\u{7f}",
  digit: "0-9",
  graph: "\\u{21}-\\u{7e}",
  lower: "a-z",
  print: "\\u{20}-\\u{7e}",
  punct: "\\u{21}-\\u{2f}\\u{3a}-\\u{40}\\u{5b}-\\u{60}\\u{7b}-\\u{7e}",
  space: "\\u{9}-\\u{d}\\u{20}",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

// Rust's \w, \d and \s are Unicode-aware by default.
const WORD_ITEMS = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
const SIMPLE_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11, a: 7, e: 27 };

class Translator {
  private pos = 0;
  private out = "";
  private flags: Flags;
  /** Flags to restore at each open group's end. */
  private readonly stack: Flags[] = [];
  private sawToken = false;
  private uniformCase = true;
  private hasUpper = false;
  /** Case-insensitivity in force at the start (set by the mode or a leading `(?i)`). */
  leadingInsensitive: boolean;

  constructor(
    private readonly src: string,
    insensitive: boolean,
    /** Expand letters in case-insensitive scopes (else the caller uses the `i` flag). */
    private readonly expand: boolean,
  ) {
    this.flags = { i: insensitive, s: false, x: false, U: false };
    this.leadingInsensitive = insensitive;
  }

  run(): Pass {
    while (this.pos < this.src.length) this.term();
    if (this.stack.length > 0) bad(this.src, "unclosed group");
    return {
      source: this.out === "" ? "(?:)" : this.out,
      uniformCase: this.uniformCase,
      hasUpper: this.hasUpper,
    };
  }

  private peek(k = 0): string | undefined {
    return this.src[this.pos + k];
  }

  private codePointAt(): { ch: string; cp: number } {
    const cp = this.src.codePointAt(this.pos)!;
    const ch = String.fromCodePoint(cp);
    this.pos += ch.length;
    return { ch, cp };
  }

  private emitAtom(s: string): void {
    this.out += s;
    this.sawToken = true;
  }

  private term(): void {
    const c = this.peek()!;
    if (this.flags.x && this.skipVerbose()) return;
    switch (c) {
      case "(":
        this.pos++;
        this.group();
        return;
      case ")":
        this.pos++;
        this.closeGroup();
        return;
      case "|":
        this.pos++;
        this.out += "|";
        return;
      case "^":
      case "$":
        this.pos++;
        this.emitAtom(c);
        return;
      case ".":
        this.pos++;
        this.emitAtom(this.flags.s ? "[\\s\\S]" : "[^\\n]");
        this.quantifier();
        return;
      case "[":
        this.pos++;
        this.emitAtom(this.cls());
        this.quantifier();
        return;
      case "*":
      case "+":
      case "?":
      case "{":
        bad(this.src, "repetition operator missing expression");
        break;
      case "\\": {
        this.pos++;
        const atom = this.escape();
        this.emitAtom(atom.source);
        if (atom.quantifiable) this.quantifier();
        return;
      }
      default: {
        const { cp } = this.codePointAt();
        this.emitAtom(this.literal(cp));
        this.quantifier();
      }
    }
  }

  /** In verbose mode whitespace and `#` comments outside classes are ignored. */
  private skipVerbose(): boolean {
    const c = this.peek();
    if (c === undefined) return false;
    if (/\s/.test(c)) {
      this.pos++;
      return true;
    }
    if (c === "#") {
      while (this.pos < this.src.length && this.peek() !== "\n") this.pos++;
      return true;
    }
    return false;
  }

  private group(): void {
    if (this.peek() !== "?") {
      this.stack.push({ ...this.flags });
      this.out += "(";
      return;
    }
    this.pos++;
    const c = this.peek();
    if (c === "=" || c === "!" || (c === "<" && (this.peek(1) === "=" || this.peek(1) === "!"))) {
      bad(this.src, "look-around is not supported");
    }
    if (c === ":") {
      this.pos++;
      this.stack.push({ ...this.flags });
      this.out += "(?:";
      return;
    }
    if (c === "P" || c === "<") {
      if (c === "P") this.pos++;
      if (this.peek() !== "<") bad(this.src, "invalid group");
      const end = this.src.indexOf(">", this.pos);
      const name = end < 0 ? "" : this.src.slice(this.pos + 1, end);
      if (!/^[_\p{L}][_\p{L}\p{Nd}.[\]]*$/u.test(name)) bad(this.src, "invalid capture group name");
      this.pos = end + 1;
      this.stack.push({ ...this.flags });
      this.out += "("; // names do not change what matches
      return;
    }
    // flag group: (?flags) or (?flags:...)
    const before = { ...this.flags };
    let negate = false;
    for (;;) {
      const f = this.peek();
      if (f === undefined) bad(this.src, "unclosed flag group");
      this.pos++;
      if (f === ")" || f === ":") {
        if (this.flags.i !== before.i && (this.sawToken || this.stack.length > 0 || f === ":"))
          this.uniformCase = false;
        if (this.flags.i !== before.i && !this.sawToken && this.stack.length === 0 && f === ")") {
          this.leadingInsensitive = this.flags.i;
        }
        if (f === ":") {
          this.stack.push(before);
          this.out += "(?:";
        }
        return;
      }
      if (f === "-") {
        if (negate) bad(this.src, "repeated negation in flag group");
        negate = true;
        continue;
      }
      switch (f) {
        case "i":
        case "s":
        case "x":
        case "U":
          this.flags[f] = !negate;
          break;
        case "m":
        case "u":
        case "R":
          break; // line-at-a-time search: multi-line and CRLF modes change nothing; Unicode is always on
        default:
          bad(this.src, `unknown flag ${JSON.stringify(f)}`);
      }
    }
  }

  private closeGroup(): void {
    const saved = this.stack.pop();
    if (!saved) bad(this.src, "unopened group");
    if (saved.i !== this.flags.i) this.uniformCase = false;
    this.flags = saved;
    this.emitAtom(")");
    this.quantifier();
  }

  private quantifier(): void {
    if (this.flags.x) while (this.peek() !== undefined && /\s/.test(this.peek()!)) this.pos++;
    const c = this.peek();
    let q: string;
    if (c === "*" || c === "+" || c === "?") {
      this.pos++;
      q = c;
    } else if (c === "{") {
      const m = /^\{\s*(\d+)\s*(?:(,)\s*(\d+)?\s*)?\}/.exec(this.src.slice(this.pos));
      if (!m) bad(this.src, "invalid repetition");
      const lo = Number(m[1]);
      const hi = m[3] === undefined ? undefined : Number(m[3]);
      if (lo > MAX_REPEAT || (hi !== undefined && hi > MAX_REPEAT))
        bad(this.src, `repetition count above ${MAX_REPEAT}`);
      if (hi !== undefined && hi < lo) bad(this.src, "invalid repetition range");
      this.pos += m[0].length;
      q = m[2] === undefined ? `{${lo}}` : `{${lo},${hi ?? ""}}`;
    } else {
      return;
    }
    let lazy = false;
    if (this.peek() === "?") {
      this.pos++;
      lazy = true;
    }
    if (this.flags.U) lazy = !lazy;
    this.out += lazy ? `${q}?` : q;
    const next = this.peek();
    if (
      next === "*" ||
      next === "+" ||
      next === "?" ||
      (next === "{" && /^\{\s*\d/.test(this.src.slice(this.pos)))
    ) {
      bad(this.src, "nested repetition needs a group");
    }
  }

  private literal(cp: number): string {
    const variants = this.variants(cp);
    if (variants.length === 1) return lit(cp);
    return `[${variants.map(lit).join("")}]`;
  }

  /** The code point and, in an expanded case-insensitive scope, its other cases. */
  private variants(cp: number): number[] {
    const ch = String.fromCodePoint(cp);
    if (ch !== ch.toLowerCase()) this.hasUpper = true;
    if (!this.expand || !this.flags.i) return [cp];
    const set = new Set([cp]);
    for (const v of [ch.toLowerCase(), ch.toUpperCase()]) {
      const vcp = v.codePointAt(0)!;
      if (String.fromCodePoint(vcp) === v) set.add(vcp);
    }
    return [...set];
  }

  /** After a backslash outside a class. */
  private escape(): { source: string; quantifiable: boolean } {
    const c = this.peek();
    if (c === undefined) bad(this.src, "incomplete escape");
    this.pos++;
    switch (c) {
      case "A":
        return { source: "^", quantifiable: false };
      case "z":
        return { source: "$", quantifiable: false };
      case "b":
        if (this.peek() === "{") {
          const end = this.src.indexOf("}", this.pos);
          const kind = end < 0 ? "" : this.src.slice(this.pos + 1, end);
          const map: Record<string, string> = {
            start: "\\b(?=\\w)",
            end: "\\b(?<=\\w)",
            "start-half": "(?<!\\w)",
            "end-half": "(?!\\w)",
          };
          const s = map[kind];
          if (s === undefined) bad(this.src, "unknown word boundary");
          this.pos = end + 1;
          return { source: s, quantifiable: false };
        }
        return { source: "\\b", quantifiable: false };
      case "B":
        return { source: "\\B", quantifiable: false };
      case "<":
        return { source: "\\b(?=\\w)", quantifiable: false };
      case ">":
        return { source: "\\b(?<=\\w)", quantifiable: false };
      case "d":
        return { source: "\\p{Nd}", quantifiable: true };
      case "D":
        return { source: "\\P{Nd}", quantifiable: true };
      case "s":
        return { source: "\\p{White_Space}", quantifiable: true };
      case "S":
        return { source: "\\P{White_Space}", quantifiable: true };
      case "w":
        return { source: `[${WORD_ITEMS}]`, quantifiable: true };
      case "W":
        return { source: `[^${WORD_ITEMS}]`, quantifiable: true };
      case "p":
      case "P":
        return { source: this.property(c === "P"), quantifiable: true };
      default: {
        this.pos--;
        const cp = this.escapedCodePoint();
        return { source: this.literal(cp), quantifiable: true };
      }
    }
  }

  /** Escapes that denote one code point: \n, \x7F, \x{..}, \u…, \U…, and escaped punctuation. */
  private escapedCodePoint(): number {
    const c = this.peek()!;
    this.pos++;
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) return simple;
    if (c === "x" || c === "u" || c === "U") {
      let hex: string;
      if (this.peek() === "{") {
        const end = this.src.indexOf("}", this.pos);
        hex = end < 0 ? "" : this.src.slice(this.pos + 1, end);
        this.pos = end < 0 ? this.src.length : end + 1;
      } else {
        const n = c === "x" ? 2 : c === "u" ? 4 : 8;
        hex = this.src.slice(this.pos, this.pos + n);
        if (hex.length !== n) hex = "";
        this.pos += n;
      }
      const cp = /^[0-9a-fA-F]{1,8}$/.test(hex) ? Number.parseInt(hex, 16) : -1;
      if (cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        bad(this.src, "invalid hexadecimal escape");
      return cp;
    }
    if (/[0-9]/.test(c)) bad(this.src, "back-references and octal escapes are not supported");
    if (/[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e ]/.test(c)) return c.codePointAt(0)!;
    bad(this.src, `unrecognized escape \\${c}`);
  }

  private property(negated: boolean): string {
    let name: string;
    if (this.peek() === "{") {
      const end = this.src.indexOf("}", this.pos);
      if (end < 0) bad(this.src, "unclosed Unicode class");
      name = this.src.slice(this.pos + 1, end).trim();
      this.pos = end + 1;
    } else {
      const ch = this.peek();
      if (ch === undefined || !/[A-Za-z]/.test(ch)) bad(this.src, "invalid Unicode class");
      name = ch;
      this.pos++;
    }
    if (name.startsWith("^")) {
      negated = !negated;
      name = name.slice(1);
    }
    const p = negated ? "P" : "p";
    const norm = name.replace(/[\s_-]+/g, "_");
    const candidates = [norm, `Script=${norm}`, `General_Category=${norm}`];
    if (/[:=]/.test(norm)) {
      const [k, v] = norm.split(/[:=]/, 2) as [string, string];
      const key = {
        sc: "Script",
        script: "Script",
        scx: "Script_Extensions",
        gc: "General_Category",
        general_category: "General_Category",
      }[k.toLowerCase()];
      candidates.unshift(`${key ?? k}=${v}`);
    }
    for (const cand of candidates) {
      if (!/^[\w=]+$/.test(cand)) continue;
      try {
        new RegExp(`\\p{${cand}}`, "u");
        return `\\${p}{${cand}}`;
      } catch {
        // try the next spelling
      }
    }
    bad(this.src, `unknown Unicode class ${JSON.stringify(name.slice(0, 40))}`);
  }

  /** A bracketed class, after the "[". */
  private cls(): string {
    let negate = false;
    if (this.peek() === "^") {
      this.pos++;
      negate = true;
    }
    let body = "";
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) bad(this.src, "unclosed character class");
      if (c === "]" && !first) {
        this.pos++;
        break;
      }
      first = false;
      if (this.flags.x && /\s/.test(c)) {
        this.pos++;
        continue;
      }
      if (c === "[") {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.pos));
        const posix = m ? POSIX_CLASSES[m[2]!] : undefined;
        if (!m || posix === undefined || m[1] === "^") bad(this.src, "nested classes are not supported");
        this.pos += m[0].length;
        body += posix;
        if (this.flags.i && this.expand && (m[2] === "lower" || m[2] === "upper")) body += "A-Za-z";
        continue;
      }
      if (
        (c === "&" && this.peek(1) === "&") ||
        (c === "~" && this.peek(1) === "~") ||
        (c === "-" && this.peek(1) === "-")
      ) {
        bad(this.src, "class set operations are not supported");
      }
      const lo = this.classAtom();
      if (typeof lo === "string") {
        body += lo;
        continue;
      }
      if (this.peek() === "-" && this.peek(1) !== "]" && this.peek(1) !== undefined) {
        this.pos++;
        const hi = this.classAtom();
        if (typeof hi === "string") bad(this.src, "invalid class range");
        if (hi < lo) bad(this.src, "invalid class range");
        body += `${lit(lo)}-${lit(hi)}`;
        if (this.flags.i && this.expand) body += this.rangeCaseVariants(lo, hi);
        continue;
      }
      body += this.variants(lo).map(lit).join("");
    }
    if (body === "") return negate ? "[\\s\\S]" : "[]";
    return `[${negate ? "^" : ""}${body}]`;
  }

  private rangeCaseVariants(lo: number, hi: number): string {
    if (hi - lo > 1024) return "";
    let extra = "";
    for (let cp = lo; cp <= hi; cp++) {
      for (const v of this.variants(cp)) if (v < lo || v > hi) extra += lit(v);
    }
    return extra;
  }

  /** One item inside a class: a code point, or a ready-made class fragment (\d, \p{..}). */
  private classAtom(): number | string {
    const c = this.peek()!;
    if (c !== "\\") {
      const { cp } = this.codePointAt();
      if (String.fromCodePoint(cp) !== String.fromCodePoint(cp).toLowerCase()) this.hasUpper = true;
      return cp;
    }
    this.pos++;
    const e = this.peek();
    if (e === undefined) bad(this.src, "incomplete escape");
    switch (e) {
      case "d":
        this.pos++;
        return "\\p{Nd}";
      case "D":
        this.pos++;
        return "\\P{Nd}";
      case "s":
        this.pos++;
        return "\\p{White_Space}";
      case "S":
        this.pos++;
        return "\\P{White_Space}";
      case "w":
        this.pos++;
        return WORD_ITEMS;
      case "W":
        return bad(this.src, "\\W inside a class is not supported");
      case "p":
      case "P":
        this.pos++;
        return this.property(e === "P");
      default:
        return this.escapedCodePoint();
    }
  }
}

/** A code point as RegExp source that is literal in any position under the `u` flag. */
function lit(cp: number): string {
  if ((cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a))
    return String.fromCodePoint(cp);
  if (cp > 0x7f && !(cp >= 0x2028 && cp <= 0x2029)) return String.fromCodePoint(cp);
  return `\\u{${cp.toString(16)}}`;
}
