/**
 * A light highlighter: comments, strings, numbers and common keywords, by line. It returns
 * tokens (class + text), which the view renders as text nodes: file contents never become HTML.
 */
export interface Token {
  cls: "" | "kw" | "str" | "com" | "num";
  text: string;
}

const KEYWORDS = new Set(
  (
    "if then else elif fi for while do done case esac in function return def class import from as " +
    "export const let var new try catch finally throw async await yield with not and or is None True " +
    "False null true false undefined struct enum fn pub use mod impl match package func type interface " +
    "public private static void int string bool echo set unset local"
  ).split(" "),
);

/** How a file writes comments, from its name. */
export function commentStyle(path: string): "#" | "//" | "none" {
  const base = path.split("/").pop() ?? "";
  const ext = base.includes(".") ? base.slice(base.lastIndexOf(".") + 1).toLowerCase() : "";
  if (["sh", "bash", "py", "rb", "pl", "toml", "yaml", "yml", "conf", "cfg", "ini", "mk"].includes(ext))
    return "#";
  if (["Makefile", "Dockerfile", "profile", "bashrc"].includes(base) || base.startsWith(".")) return "#";
  if (
    ["js", "ts", "tsx", "jsx", "c", "h", "cc", "cpp", "rs", "go", "java", "kt", "swift", "css"].includes(ext)
  )
    return "//";
  return ext === "" ? "#" : "none";
}

const TOKEN = /("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|\b\d+(?:\.\d+)?\b|[A-Za-z_][A-Za-z0-9_]*)/g;

export function highlightLine(line: string, comment: "#" | "//" | "none"): Token[] {
  const out: Token[] = [];
  let code = line;
  let tail: Token | undefined;
  if (comment !== "none") {
    const at = findComment(line, comment);
    if (at >= 0) {
      code = line.slice(0, at);
      tail = { cls: "com", text: line.slice(at) };
    }
  }
  let last = 0;
  for (const m of code.matchAll(TOKEN)) {
    const t = m[0];
    const i = m.index;
    const cls: Token["cls"] =
      t.startsWith('"') || t.startsWith("'") ? "str" : /^\d/.test(t) ? "num" : KEYWORDS.has(t) ? "kw" : "";
    if (cls === "") continue;
    if (i > last) out.push({ cls: "", text: code.slice(last, i) });
    out.push({ cls, text: t });
    last = i + t.length;
  }
  if (last < code.length) out.push({ cls: "", text: code.slice(last) });
  if (tail !== undefined) out.push(tail);
  return out;
}

/** Where a comment starts outside quotes (-1: none). `#` counts only at a word start. */
function findComment(line: string, style: "#" | "//"): number {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== "") {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (style === "#" && c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return i;
    else if (style === "//" && c === "/" && line[i + 1] === "/") return i;
  }
  return -1;
}
