// Builds what the package ships: dist/esm (ES modules) and dist/cjs (CommonJS, marked as such by
// dist/cjs/package.json), each with its .d.ts, from the sources that tsconfig.json lists.
//
// `npm pack` runs this (prepack), so a failed build must not leave the package without a dist, and a
// module whose source was deleted must not ship. Both builds are compiled in memory and type-checked
// first; only then is dist/ touched: each file is replaced by a rename (a reader always sees a whole
// file, old or new, never a missing one), and afterwards every file the sources did not produce is
// removed. Usage: node scripts/build-dist.mjs

import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(SDK, "dist");
/** Kept besides the two builds: the root `tsc -b` keeps its incremental state there (never shipped). */
const BUILD_INFO = join(DIST, ".tsbuildinfo");

const formatHost = {
  getCanonicalFileName: (f) => f,
  getCurrentDirectory: () => SDK,
  getNewLine: () => "\n",
};

function fail(diagnostics) {
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, formatHost));
  process.exit(1);
}

const configDiagnostics = [];
const parsed = ts.getParsedCommandLineOfConfigFile(
  join(SDK, "tsconfig.json"),
  {},
  { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => configDiagnostics.push(d) },
);
if (!parsed || configDiagnostics.length > 0) fail(configDiagnostics);
if (parsed.errors.length > 0) fail(parsed.errors);

// A one-shot build: no incremental state, no maps; declarations for every module.
const common = {
  ...parsed.options,
  composite: false,
  incremental: false,
  tsBuildInfoFile: undefined,
  declaration: true,
  declarationMap: false,
  sourceMap: false,
  noEmit: false,
};
const builds = [
  { dir: "esm", options: common },
  {
    dir: "cjs",
    options: {
      ...common,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      // verbatimModuleSyntax forbids `import`/`export` in a CommonJS output; the ESM build keeps it.
      verbatimModuleSyntax: false,
    },
  },
];

/** Absolute path → content of every file the build produces. */
const outputs = new Map();
const sourceCache = new Map();
for (const { dir, options } of builds) {
  const outDir = join(DIST, dir);
  const host = ts.createCompilerHost({ ...options, outDir });
  const readSource = host.getSourceFile;
  // Both builds parse the same sources; parse each once (the language version is the same).
  host.getSourceFile = (name, ...rest) => {
    if (!sourceCache.has(name)) sourceCache.set(name, readSource.call(host, name, ...rest));
    return sourceCache.get(name);
  };
  const program = ts.createProgram(parsed.fileNames, { ...options, outDir }, host);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) fail(diagnostics);
  const emitted = program.emit(undefined, (name, text) => outputs.set(resolve(name), text));
  if (emitted.emitSkipped || emitted.diagnostics.length > 0) fail(emitted.diagnostics);
}
// Without this marker Node and TypeScript would read dist/cjs/*.js as ES modules ("type": "module").
outputs.set(join(DIST, "cjs", "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);

for (const [path, text] of outputs) {
  mkdirSync(dirname(path), { recursive: true });
  let same = false;
  try {
    same = readFileSync(path, "utf8") === text;
  } catch {}
  if (same) continue;
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/** Removes what the build did not produce; returns whether `dir` is empty afterwards. */
function prune(dir) {
  let empty = true;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (path === BUILD_INFO) {
      empty = false;
    } else if (entry.isDirectory()) {
      if (prune(path)) rmdirSync(path);
      else empty = false;
    } else if (!outputs.has(path)) {
      rmSync(path, { force: true });
    } else {
      empty = false;
    }
  }
  return empty;
}
prune(DIST);

// On stderr: `npm pack --json` shares stdout with this script and must stay parseable.
const count = (dir) => [...outputs.keys()].filter((p) => p.startsWith(`${join(DIST, dir)}/`)).length;
console.error(
  `${relative(process.cwd(), DIST) || "."}: esm ${count("esm")} files, cjs ${count("cjs")} files`,
);
