/**
 * The layering rules of docs/ARCHITECTURE.md ("Dependency rules"), checked in scripts/test.sh
 * (`npx depcruise packages/server/src`). Type-only imports count like any other.
 *
 * Each subsystem folder lists the folders it may import. The lists form a DAG (each folder
 * lists only folders above it), so besides the module-level cycle rule no two folders can
 * depend on each other either.
 */
const SRC = "^packages/server/src/";
const dir = (name) => `${SRC}${name}/`;

/** Folder → the other folders it may import (its own files are always allowed). */
const LAYERS = {
  core: [],
  sys: [],
  layers: ["core"],
  content: ["core"],
  outputs: ["core"],
  registry: ["core"],
  config: ["core", "registry"],
  observability: ["config", "sys"],
  metadata: ["core", "config"],
  auth: ["core", "metadata"],
  storage: ["core", "observability", "sys"],
  runtime: ["core", "observability", "sys"],
  files: ["core", "content", "metadata"],
  inspect: ["core", "layers"],
  operations: ["core", "config", "metadata", "observability"],
  // Project secrets: sealed rows, the key, what a commit must not hold.
  secrets: ["core", "metadata", "registry", "sys"],
  // Image filesystems: layer store, run rootfs, commit, flatten, views, leases, GC.
  snapshots: ["core", "config", "content", "layers", "metadata", "observability", "storage", "sys"],
  images: [
    "core",
    "auth",
    "config",
    "layers",
    "metadata",
    "observability",
    "operations",
    "registry",
    "snapshots",
    "sys",
  ],
  instances: [
    "core",
    "auth",
    "config",
    "content",
    "images",
    "layers",
    "metadata",
    "observability",
    "operations",
    "outputs",
    "runtime",
    "secrets",
    "snapshots",
    "sys",
  ],
  // Services and core; metadata only for the record types services return (type-only, below).
  api: [
    "core",
    "auth",
    "config",
    "files",
    "images",
    "inspect",
    "instances",
    "metadata",
    "observability",
    "operations",
    "outputs",
    "secrets",
    "snapshots",
  ],
};

/** Concrete backends: only the composition root (main.ts, cli/) picks them. */
const BACKENDS = [
  `${SRC}metadata/sqlite/`,
  `${SRC}content/local/`,
  `${SRC}outputs/local/`,
  `${SRC}registry/http-registry-client\\.ts$`,
];

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "No import cycles between modules, type-only imports included.",
      from: { path: SRC },
      to: { circular: true },
    },
    ...Object.entries(LAYERS).map(([name, allowed]) => ({
      name: `layer-${name}`,
      severity: "error",
      comment:
        allowed.length === 0
          ? `${name}/ imports nothing internal`
          : `${name}/ may import ${allowed.join(", ")}`,
      from: { path: dir(name) },
      to: { path: SRC, pathNot: [dir(name), ...allowed.map(dir)] },
    })),
    {
      name: "api-no-repositories",
      severity: "error",
      comment:
        "Routes go through services: from metadata/ only the record types services hand out (type-only), never a repository or the store.",
      from: { path: dir("api") },
      to: { path: dir("metadata"), dependencyTypesNot: ["type-only"] },
    },
    {
      name: "api-no-store",
      severity: "error",
      from: { path: dir("api") },
      to: { path: [`${SRC}metadata/metadata-store\\.ts$`, `${SRC}metadata/sqlite/`] },
    },
    {
      name: "backends-only-in-the-composition-root",
      severity: "error",
      comment: "Only main.ts (and the cli/ commands it serves) pick a concrete backend.",
      from: { path: SRC, pathNot: [`${SRC}main\\.ts$`, `${SRC}cli/`, ...BACKENDS] },
      to: { path: BACKENDS },
    },
    {
      name: "backends-import-core-and-their-interface",
      severity: "error",
      comment:
        "A storage backend sees core/ and its own subsystem (interface, shared repository code, its migrations), nothing beside it.",
      from: { path: `${SRC}(metadata|content|outputs)/(sqlite|local)/` },
      to: { path: SRC, pathNot: [dir("core"), `${SRC}$1/`] },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(\\.test|testsuite)\\.ts$" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
