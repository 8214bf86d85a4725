// Writes API.md from the SDK's public types, so the reference is whatever src/index.ts exports and
// cannot drift from it (test/api-reference.test.ts compares a fresh run with the committed file).
// Members tagged `@internal` are left out. A public signature that names a type or value the index
// does not export (a module's internal helper) is an error: the reference would point at nothing.
// Usage: node scripts/gen-api-reference.mjs [output path, default API.md next to package.json]

import { writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY = resolve(SDK, "src/index.ts");
const out = resolve(process.argv[2] ?? resolve(SDK, "API.md"));

const parsed = ts.getParsedCommandLineOfConfigFile(
  resolve(SDK, "tsconfig.json"),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    },
  },
);
if (!parsed) throw new Error("cannot read packages/sdk/tsconfig.json");
const program = ts.createProgram([ENTRY], { ...parsed.options, noEmit: true, composite: false });
// Syntax and option errors only: a full type check is tsc's job and would triple the run time.
const errors = [...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics()];
if (errors.length > 0) {
  const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => SDK, getNewLine: () => "\n" };
  throw new Error(ts.formatDiagnostics(errors, host));
}
const checker = program.getTypeChecker();
const entry = program.getSourceFile(ENTRY);
const moduleSymbol = entry && checker.getSymbolAtLocation(entry);
if (!moduleSymbol) throw new Error("src/index.ts is not a module");

const TYPE_FLAGS = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope;

const GROUPS = [
  ["class", "Classes"],
  ["function", "Functions"],
  ["const", "Constants"],
  ["interface", "Interfaces"],
  ["type", "Type aliases"],
];

const printer = ts.createPrinter({ removeComments: true });

/** One-line source text: the reference shows types as written, without comments or line breaks. */
function flat(node) {
  return printer
    .printNode(ts.EmitHint.Unspecified, node, node.getSourceFile())
    .replace(/\s+/g, " ")
    .replace(/;$/, "")
    .trim();
}

function docOf(symbol) {
  if (!symbol) return "";
  const text = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
  const tags = symbol
    .getJsDocTags(checker)
    .map((t) => `@${t.name}${t.text ? ` ${ts.displayPartsToString(t.text)}` : ""}`);
  return [text, ...tags].filter(Boolean).join("\n");
}

function code(text) {
  const ticks = text.includes("`") ? "``" : "`";
  const pad = ticks === "``" ? " " : "";
  return `${ticks}${pad}${text}${pad}${ticks}`;
}

/** Every signature and declaration the reference prints, checked for internal names at the end. */
const printedCode = [];

function bullet(signature, doc) {
  printedCode.push(signature);
  const lines = [`- ${code(signature)}`];
  if (doc) lines.push(...doc.split("\n").map((l) => (l ? `  ${l}` : "")));
  return lines.join("\n");
}

function isHidden(node) {
  if (ts.getJSDocTags(node).some((t) => t.tagName.text === "internal")) return true;
  const name = node.name && ts.isIdentifier(node.name) ? node.name.text : node.name?.getText();
  if (name && (name.startsWith("_") || name.startsWith("#"))) return true;
  const flags = ts.getCombinedModifierFlags(node);
  return (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) !== 0;
}

/** Overloaded functions and methods show their overloads, not the implementation. */
function callableDeclarations(decls) {
  const overloads = decls.filter((d) => !d.body);
  return overloads.length > 0 ? overloads : decls;
}

function signature(decl, prefix) {
  const sig = checker.getSignatureFromDeclaration(decl);
  if (!sig) return prefix;
  const text = `${prefix}${checker.signatureToString(sig, decl, TYPE_FLAGS)}`;
  if (!ts.isConstructorDeclaration(decl)) return text;
  // `new C(...)` obviously yields a C; the checker's `: C` suffix only adds noise.
  const suffix = `: ${checker.typeToString(sig.getReturnType(), decl, TYPE_FLAGS)}`;
  return text.endsWith(suffix) ? text.slice(0, -suffix.length) : text;
}

function typeParams(decl) {
  return decl.typeParameters ? `<${decl.typeParameters.map(flat).join(", ")}>` : "";
}

function heritage(decl) {
  return (decl.heritageClauses ?? []).map(flat).join(" ");
}

function propertyLine(node, name) {
  const mods = [];
  const flags = ts.getCombinedModifierFlags(node);
  if (flags & ts.ModifierFlags.Static) mods.push("static");
  if (flags & ts.ModifierFlags.Readonly) mods.push("readonly");
  const optional = node.questionToken ? "?" : "";
  const type = node.type
    ? flat(node.type)
    : checker.typeToString(checker.getTypeAtLocation(node), node, TYPE_FLAGS);
  return `${[...mods, name].join(" ")}${optional}: ${type}`;
}

function memberLines(members, className) {
  const lines = [];
  const seenCallables = new Set();
  for (const m of members) {
    if (isHidden(m)) continue;
    const symbol = m.name ? checker.getSymbolAtLocation(m.name) : m.symbol;
    const name = m.name?.getText() ?? "";
    const isStatic = (ts.getCombinedModifierFlags(m) & ts.ModifierFlags.Static) !== 0;
    const statik = isStatic ? "static " : "";
    if (ts.isConstructorDeclaration(m)) {
      for (const p of m.parameters) {
        const paramFlags = ts.getCombinedModifierFlags(p);
        const isProperty = (paramFlags & ts.ModifierFlags.ParameterPropertyModifier) !== 0;
        if (!isProperty || isHidden(p)) continue;
        lines.push(bullet(propertyLine(p, p.name.getText()), docOf(checker.getSymbolAtLocation(p.name))));
      }
      if (seenCallables.has("constructor")) continue;
      seenCallables.add("constructor");
      const ctors = callableDeclarations(members.filter(ts.isConstructorDeclaration)).filter(
        (c) => !isHidden(c),
      );
      for (const c of ctors) lines.push(bullet(signature(c, `new ${className}`), docOf(c.symbol)));
    } else if (ts.isMethodDeclaration(m) || ts.isMethodSignature(m)) {
      const key = `${statik}${name}`;
      if (seenCallables.has(key)) continue;
      seenCallables.add(key);
      const same = members.filter(
        (o) =>
          (ts.isMethodDeclaration(o) || ts.isMethodSignature(o)) &&
          o.name?.getText() === name &&
          ((ts.getCombinedModifierFlags(o) & ts.ModifierFlags.Static) !== 0) === isStatic,
      );
      const decls = ts.isMethodDeclaration(m) ? callableDeclarations(same) : same;
      const optional = m.questionToken ? "?" : "";
      // Overloads share the method's doc comment: print it once, under the last of them.
      decls.forEach((d, i) => {
        const doc = i === decls.length - 1 ? docOf(symbol) : "";
        lines.push(bullet(signature(d, `${statik}${name}${optional}`), doc));
      });
    } else if (ts.isPropertyDeclaration(m) || ts.isPropertySignature(m)) {
      lines.push(bullet(propertyLine(m, name), docOf(symbol)));
    } else if (ts.isGetAccessorDeclaration(m) || ts.isSetAccessorDeclaration(m)) {
      const kind = ts.isGetAccessorDeclaration(m) ? "get" : "set";
      lines.push(bullet(signature(m, `${statik}${kind} ${name}`), docOf(symbol)));
    } else if (ts.isCallSignatureDeclaration(m)) {
      lines.push(bullet(signature(m, ""), docOf(m.symbol)));
    } else if (ts.isConstructSignatureDeclaration(m)) {
      lines.push(bullet(signature(m, "new "), docOf(m.symbol)));
    } else if (ts.isIndexSignatureDeclaration(m)) {
      lines.push(bullet(flat(m).replace(/;$/, ""), docOf(m.symbol)));
    }
  }
  return lines;
}

function kindOf(decl) {
  if (ts.isClassDeclaration(decl)) return "class";
  if (ts.isFunctionDeclaration(decl)) return "function";
  if (ts.isInterfaceDeclaration(decl)) return "interface";
  if (ts.isTypeAliasDeclaration(decl)) return "type";
  if (ts.isVariableDeclaration(decl)) return "const";
  if (ts.isEnumDeclaration(decl)) return "type";
  return undefined;
}

function section(name, symbol, decls) {
  const kind = kindOf(decls[0]);
  const file = relative(SDK, decls[0].getSourceFile().fileName);
  const body = [`### ${code(name)}`, "", `${kind} · \`${file}\``];
  const doc = docOf(symbol);
  if (doc) body.push("", doc);
  const decl = decls[0];
  if (kind === "class") {
    const head = [`class ${name}${typeParams(decl)}`, heritage(decl)].filter(Boolean).join(" ");
    body.push("", "```ts", head, "```");
    const lines = memberLines([...decl.members], name);
    if (lines.length > 0) body.push("", ...lines);
  } else if (kind === "interface") {
    const head = [`interface ${name}${typeParams(decl)}`, heritage(decl)].filter(Boolean).join(" ");
    body.push("", "```ts", head, "```");
    const lines = memberLines(
      decls.filter(ts.isInterfaceDeclaration).flatMap((d) => [...d.members]),
      name,
    );
    if (lines.length > 0) body.push("", ...lines);
  } else if (kind === "function") {
    const sigs = callableDeclarations(decls.filter(ts.isFunctionDeclaration)).map((d) =>
      signature(d, `function ${name}`),
    );
    body.push("", "```ts", ...sigs, "```");
  } else if (kind === "type" && internalInterface(decl)) {
    // `type Public = InternalInterface` (a rename): document the members under the public name.
    const target = internalInterface(decl);
    const head = [`interface ${name}`, heritage(target)].filter(Boolean).join(" ");
    body.push("", "```ts", head, "```");
    const lines = memberLines([...target.members], name);
    if (lines.length > 0) body.push("", ...lines);
    return { kind: "interface", name, text: body.join("\n") };
  } else if (kind === "type") {
    const text = ts.isEnumDeclaration(decl)
      ? decl.getText().replace(/^export\s+/, "")
      : typeAlias(name, decl);
    body.push("", "```ts", text, "```");
  } else if (kind === "const") {
    const type = decl.type
      ? flat(decl.type)
      : checker.typeToString(checker.getTypeAtLocation(decl.name), decl, TYPE_FLAGS);
    body.push("", "```ts", `const ${name}: ${type}`, "```");
    // Guards such as `isNotFound` are consts holding functions; readers look for them among functions.
    if (checker.getTypeAtLocation(decl.name).getCallSignatures().length > 0) {
      return { kind: "function", name, text: body.join("\n") };
    }
  }
  return { kind, name, text: body.join("\n") };
}

/** The interface a type alias merely renames, when that interface is not itself exported. */
function internalInterface(decl) {
  if (!ts.isTypeAliasDeclaration(decl) || decl.typeParameters || !ts.isTypeReferenceNode(decl.type)) return;
  if (decl.type.typeArguments) return;
  const target = checker.getSymbolAtLocation(decl.type.typeName);
  const resolved = target && target.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(target) : target;
  const iface = resolved?.declarations?.find(ts.isInterfaceDeclaration);
  return iface && !publicSymbols.has(resolved) ? iface : undefined;
}

function typeAlias(name, decl) {
  const text = dedent(decl.type.getText());
  // A union written one member per line starts with `|`: keep that layout.
  const sep = text.startsWith("|") ? "\n  " : " ";
  return `type ${name}${typeParams(decl)} =${sep}${text}`;
}

/** Continuation lines of a multi-line type keep their shape relative to the first line. */
function dedent(text) {
  const lines = text.split("\n");
  const indents = lines
    .slice(1)
    .filter((l) => l.trim())
    .map((l) => l.match(/^ */)[0].length);
  const cut = Math.max(0, Math.min(...indents) - 2);
  return [lines[0], ...lines.slice(1).map((l) => l.slice(Math.min(cut, l.match(/^ */)[0].length)))].join(
    "\n",
  );
}

const publicExports = checker.getExportsOfModule(moduleSymbol);
const publicSymbols = new Set(
  publicExports.map((e) => (e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e)),
);

const sections = [];
for (const exported of publicExports) {
  const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
  const decls = (symbol.declarations ?? []).filter((d) => kindOf(d));
  if (decls.length === 0) throw new Error(`no declaration for export ${exported.name}`);
  const name = exported.name;
  if (name.startsWith("_")) continue;
  sections.push(section(name, symbol, decls));
}
// Names declared at the top of any SDK module that the index does not export.
const publicNames = new Set(publicExports.map((e) => e.name));
const internalNames = new Set();
for (const file of program.getSourceFiles()) {
  if (!file.fileName.startsWith(`${resolve(SDK, "src")}/`)) continue;
  for (const statement of file.statements) {
    const names = ts.isVariableStatement(statement)
      ? statement.declarationList.declarations.map((d) => d.name)
      : [statement.name];
    for (const n of names) if (n && ts.isIdentifier(n) && !publicNames.has(n.text)) internalNames.add(n.text);
  }
}
const allCode = [
  ...printedCode,
  ...sections.flatMap((s) => [...s.text.matchAll(/```ts\n([\s\S]*?)\n```/g)].map((m) => m[1])),
];
// A name followed by `:` or `?:` is a property or parameter name, not a reference.
const leaks = [...internalNames].filter((n) =>
  allCode.some((c) => new RegExp(`(?<![.\\w])${n}\\b(?!\\??:)`).test(c)),
);
if (leaks.length > 0) {
  throw new Error(
    `public signatures name what src/index.ts does not export: ${leaks.sort().join(", ")} ` +
      "(export it if it is public API, tag the member @internal, or change the signature)",
  );
}

const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
sections.sort((a, b) => byName(a.name.toLowerCase(), b.name.toLowerCase()) || byName(a.name, b.name));

const doc = [
  "<!-- Generated by scripts/gen-api-reference.mjs from src/index.ts. Do not edit; run `npm run gen:api`. -->",
  "",
  "# @contree/sdk API reference",
  "",
  "Everything `@contree/sdk` exports, with the doc comments from the source. Classes list their public",
  "members; inherited members are documented on the base class. Wire types use the wire field names.",
];
for (const [kind, title] of GROUPS) {
  const group = sections.filter((s) => s.kind === kind);
  if (group.length === 0) continue;
  doc.push("", `## ${title}`, "", group.map((s) => `[${code(s.name)}](#${s.name.toLowerCase()})`).join(", "));
  for (const s of group) doc.push("", s.text);
}
writeFileSync(out, `${doc.join("\n")}\n`);
