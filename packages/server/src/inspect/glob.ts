/**
 * ripgrep-style `--glob` filters: `*` and `?` stay within one path component, `**` crosses
 * them, `[...]`/`[!...]` classes and `{a,b}` alternatives; a leading `!` makes the glob an
 * exclusion. A glob is tried against the entry's name and against its path relative to the
 * searched directory (and to "/"), so both `*.conf` and `etc/*.conf` work.
 *
 * Matching is a set-of-positions simulation, linear in pattern × path, so hostile globs cannot
 * make it backtrack.
 */
import { invalidArgument } from "../core/errors.js";

const MAX_GLOB = 1024;
const MAX_ALTERNATIVES = 256;

type Token =
  | { t: "char"; c: string }
  | { t: "any" } // ?
  | { t: "star" } // *
  | { t: "globstar" } // ** (crosses "/")
  | { t: "dirs" } // **/ : "" or anything ending in "/"
  | { t: "class"; neg: boolean; items: Array<[string, string]> };

export interface GlobFilter {
  /** Whether a file is searched: no exclusion matches and, if there are inclusions, one does. */
  includesFile(name: string, relPath: string, absPath: string): boolean;
  /** Whether a directory is entered: no exclusion matches it. */
  entersDir(name: string, relPath: string, absPath: string): boolean;
}

export class Glob {
  private readonly alternatives: Token[][];

  constructor(readonly source: string) {
    if (source.length > MAX_GLOB) throw invalidArgument(`glob longer than ${MAX_GLOB} characters`);
    const g = source.replace(/^\/+/, "").replace(/\/+$/, "");
    this.alternatives = expandBraces(g, source).map((alt) => tokenize(alt, source));
  }

  matches(s: string): boolean {
    return this.alternatives.some((toks) => run(toks, s));
  }
}

export function compileGlobs(globs: readonly string[]): GlobFilter {
  const include: Glob[] = [];
  const exclude: Glob[] = [];
  for (const g of globs) {
    if (g.startsWith("!")) exclude.push(new Glob(g.slice(1)));
    else if (g !== "") include.push(new Glob(g));
  }
  const hit = (gs: Glob[], name: string, rel: string, abs: string) =>
    gs.some((g) => g.matches(name) || (rel !== "" && g.matches(rel)) || g.matches(abs.replace(/^\/+/, "")));
  return {
    includesFile: (name, rel, abs) =>
      !hit(exclude, name, rel, abs) && (include.length === 0 || hit(include, name, rel, abs)),
    entersDir: (name, rel, abs) => !hit(exclude, name, rel, abs),
  };
}

function invalid(glob: string, why: string): never {
  throw invalidArgument(`invalid glob ${JSON.stringify(glob.slice(0, 200))}: ${why}`);
}

/** `a{b,c{d,e}}` → ["ab", "acd", "ace"]; escapes are kept for the tokenizer. */
function expandBraces(g: string, source: string): string[] {
  let open = -1;
  for (let i = 0; i < g.length; i++) {
    if (g[i] === "\\") {
      i++;
      continue;
    }
    if (g[i] === "[") {
      const end = g.indexOf("]", i + 2);
      if (end > 0) i = end;
      continue;
    }
    if (g[i] === "{") {
      open = i;
      break;
    }
  }
  if (open < 0) return [g];
  let depth = 0;
  const cuts: number[] = [];
  let close = -1;
  for (let i = open; i < g.length; i++) {
    const c = g[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) {
        close = i;
        break;
      }
    } else if (c === "," && depth === 1) cuts.push(i);
  }
  if (close < 0) invalid(source, "unclosed {");
  const head = g.slice(0, open);
  const tail = g.slice(close + 1);
  const parts: string[] = [];
  let from = open + 1;
  for (const c of [...cuts, close]) {
    parts.push(g.slice(from, c));
    from = c + 1;
  }
  const out: string[] = [];
  for (const p of parts) {
    for (const e of expandBraces(head + p + tail, source)) {
      out.push(e);
      if (out.length > MAX_ALTERNATIVES) invalid(source, "too many {} alternatives");
    }
  }
  return out;
}

function tokenize(g: string, source: string): Token[] {
  const toks: Token[] = [];
  const chars = [...g];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === "\\") {
      i++;
      if (i < chars.length) toks.push({ t: "char", c: chars[i]! });
    } else if (c === "?") toks.push({ t: "any" });
    else if (c === "*") {
      if (chars[i + 1] === "*") {
        const atStart = i === 0 || chars[i - 1] === "/";
        while (chars[i + 1] === "*") i++;
        if (atStart && chars[i + 1] === "/") {
          i++;
          toks.push({ t: "dirs" });
        } else toks.push({ t: "globstar" });
      } else toks.push({ t: "star" });
    } else if (c === "[") {
      let j = i + 1;
      let neg = false;
      if (chars[j] === "!" || chars[j] === "^") {
        neg = true;
        j++;
      }
      const items: Array<[string, string]> = [];
      let first = true;
      for (;;) {
        const d = chars[j];
        if (d === undefined) invalid(source, "unclosed [");
        if (d === "]" && !first) break;
        first = false;
        let lo = d;
        if (d === "\\" && chars[j + 1] !== undefined) lo = chars[++j]!;
        if (chars[j + 1] === "-" && chars[j + 2] !== undefined && chars[j + 2] !== "]") {
          items.push([lo, chars[j + 2]!]);
          j += 3;
        } else {
          items.push([lo, lo]);
          j++;
        }
      }
      toks.push({ t: "class", neg, items });
      i = j;
    } else toks.push({ t: "char", c });
  }
  return toks;
}

function run(toks: Token[], s: string): boolean {
  const cs = [...s];
  const n = cs.length;
  let cur = new Uint8Array(n + 1);
  cur[0] = 1;
  for (const tok of toks) {
    const next = new Uint8Array(n + 1);
    let any = false;
    switch (tok.t) {
      case "star":
      case "globstar": {
        let on = false;
        for (let q = 0; q <= n; q++) {
          if (cur[q]) on = true;
          if (on) {
            next[q] = 1;
            any = true;
          }
          if (tok.t === "star" && cs[q] === "/") on = false;
        }
        break;
      }
      case "dirs": {
        let seen = false;
        for (let q = 0; q <= n; q++) {
          if (cur[q] || (seen && cs[q - 1] === "/")) {
            next[q] = 1;
            any = true;
          }
          if (cur[q]) seen = true;
        }
        break;
      }
      default:
        for (let q = 0; q < n; q++) {
          if (cur[q] && single(tok, cs[q]!)) {
            next[q + 1] = 1;
            any = true;
          }
        }
    }
    if (!any) return false;
    cur = next;
  }
  return cur[n] === 1;
}

function single(tok: Token, c: string): boolean {
  switch (tok.t) {
    case "char":
      return tok.c === c;
    case "any":
      return c !== "/";
    case "class": {
      if (c === "/") return false;
      const inside = tok.items.some(([lo, hi]) => c >= lo && c <= hi);
      return inside !== tok.neg;
    }
    default:
      return false;
  }
}
