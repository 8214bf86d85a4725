import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
import { LIMITS } from "./limits.js";
import {
  type ConfigFlags,
  DEFAULT_HEAVY,
  DEFAULT_LIMITS,
  ENV_VARS,
  loadConfig,
  parseListen,
} from "./load-config.js";

function refusal(flags: ConfigFlags, env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(flags, env);
  } catch (err) {
    expect(isAppError(err) && err.kind).toBe("invalid_argument");
    return (err as Error).message;
  }
  throw new Error(`configuration accepted: ${JSON.stringify({ flags, env })}`);
}

describe("loadConfig", () => {
  it("has documented defaults", () => {
    // toMatchObject: other subsystems add their own settings beside these.
    expect(loadConfig({}, {})).toMatchObject({
      dataDir: "/var/lib/contree",
      host: "127.0.0.1",
      port: 8080,
      pathPrefix: "",
      logLevel: "info",
      maxUploadBytes: 1024 * 1024 * 1024,
      runtime: "auto",
      insecureRegistries: [],
      privateRegistries: [],
      defaultLimits: DEFAULT_LIMITS,
      bootstrapToken: undefined,
    });
  });

  it("heavy-request limits: defaults, environment, refusals", () => {
    expect(loadConfig({}, {}).heavyRequests).toEqual(DEFAULT_HEAVY);
    expect(
      loadConfig(
        {},
        { CONTREE_HEAVY_PER_TOKEN: "2", CONTREE_HEAVY_PER_PROJECT: "3", CONTREE_HEAVY_TOTAL: "9" },
      ).heavyRequests,
    ).toEqual({ perToken: 2, perProject: 3, total: 9 });
    expect(refusal({}, { CONTREE_HEAVY_PER_TOKEN: "0" })).toMatch(
      /CONTREE_HEAVY_PER_TOKEN must be an integer >= 1/,
    );
    expect(refusal({}, { CONTREE_HEAVY_TOTAL: "many" })).toMatch(
      /CONTREE_HEAVY_TOTAL must be an integer >= 1/,
    );
  });

  it("reads every environment variable", () => {
    const c = loadConfig(
      {},
      {
        CONTREE_DATA_DIR: "/srv/contree",
        CONTREE_LISTEN: "0.0.0.0:9000",
        CONTREE_PATH_PREFIX: "/sandboxes",
        CONTREE_LOG_LEVEL: "debug",
        CONTREE_MAX_UPLOAD_BYTES: "1000",
        CONTREE_RUNTIME: "oci",
        CONTREE_INSECURE_REGISTRIES: " reg.local:5000 , mirror ,",
        CONTREE_PRIVATE_REGISTRIES: "reg.local:5000, 10.0.0.0/8,[::1]:5000",
        CONTREE_BOOTSTRAP_TOKEN: "secret-token-1",
        CONTREE_INSTANCE_MAX_TIMEOUT: "60",
        CONTREE_INSTANCE_MAX_CONCURRENCY: "2",
        CONTREE_INSTANCE_MAX_LAYER_BYTES: "1048576",
        CONTREE_IMAGES_IMPORT_MAX_CONCURRENCY: "1",
        CONTREE_IMAGES_IMPORT_MAX_TIMEOUT: "120",
        CONTREE_STORAGE_MAX_BYTES: "5000000000",
      },
    );
    expect(c).toMatchObject({
      dataDir: "/srv/contree",
      host: "0.0.0.0",
      port: 9000,
      pathPrefix: "/sandboxes",
      logLevel: "debug",
      maxUploadBytes: 1000,
      runtime: "oci",
      insecureRegistries: ["reg.local:5000", "mirror"],
      privateRegistries: ["reg.local:5000", "10.0.0.0/8", "[::1]:5000"],
      defaultLimits: {
        instance_max_timeout: 60,
        instance_max_concurrency: 2,
        instance_max_layer_bytes: 1048576,
        images_import_max_concurrency: 1,
        images_import_max_timeout: 120,
        storage_max_bytes: 5000000000,
      },
      bootstrapToken: "secret-token-1",
    });
  });

  it("retention TTLs default to 7 days (images) and 1 day (files); 0 means never and is accepted", () => {
    expect(loadConfig({}, {}).defaultLimits).toMatchObject({
      images_ttl_seconds: 604800,
      files_ttl_seconds: 86400,
    });
    const c = loadConfig({}, { CONTREE_IMAGES_TTL_SECONDS: "0", CONTREE_FILES_TTL_SECONDS: "0" });
    expect(c.defaultLimits).toMatchObject({ images_ttl_seconds: 0, files_ttl_seconds: 0 });
  });

  it("flags win over the environment, which wins over defaults", () => {
    const env = {
      CONTREE_DATA_DIR: "/env/data",
      CONTREE_LISTEN: "127.0.0.1:1111",
      CONTREE_RUNTIME: "oci",
      CONTREE_LOG_LEVEL: "warn",
      CONTREE_PATH_PREFIX: "/env",
    };
    const c = loadConfig(
      {
        dataDir: "/flag/data",
        listen: "127.0.0.1:2222",
        runtime: "gvisor",
        logLevel: "error",
        pathPrefix: "/flag",
      },
      env,
    );
    expect([c.dataDir, c.port, c.runtime, c.logLevel, c.pathPrefix]).toEqual([
      "/flag/data",
      2222,
      "gvisor",
      "error",
      "/flag",
    ]);
    const e = loadConfig({ dataDir: undefined }, env);
    expect([e.dataDir, e.port, e.runtime, e.logLevel, e.pathPrefix]).toEqual([
      "/env/data",
      1111,
      "oci",
      "warn",
      "/env",
    ]);
  });

  it("an invalid environment value is irrelevant when a flag overrides it", () => {
    expect(
      loadConfig({ runtime: "oci", listen: "127.0.0.1:1" }, { CONTREE_RUNTIME: "bogus", CONTREE_LISTEN: "x" })
        .runtime,
    ).toBe("oci");
  });

  it("empty environment values count as unset", () => {
    const c = loadConfig(
      {},
      { CONTREE_LISTEN: "", CONTREE_RUNTIME: "", CONTREE_MAX_UPLOAD_BYTES: "", CONTREE_BOOTSTRAP_TOKEN: "" },
    );
    expect([c.port, c.runtime, c.maxUploadBytes, c.bootstrapToken]).toEqual([
      8080,
      "auto",
      1024 ** 3,
      undefined,
    ]);
  });

  it("resolves a relative data dir to an absolute path", () => {
    expect(loadConfig({ dataDir: "rel/data" }, {}).dataDir).toBe(resolve("rel/data"));
  });

  it("normalises the path prefix and refuses malformed ones", () => {
    expect(loadConfig({ pathPrefix: "/sandboxes/" }, {}).pathPrefix).toBe("/sandboxes");
    expect(loadConfig({ pathPrefix: "/a/b.c_d-e~" }, {}).pathPrefix).toBe("/a/b.c_d-e~");
    expect(loadConfig({ pathPrefix: "/" }, {}).pathPrefix).toBe("");
    expect(loadConfig({ pathPrefix: "//" }, {}).pathPrefix).toBe("");
    for (const bad of ["sandboxes", "/a b", "/a//b", "/a?x=1", "/%2e%2e", "/../x", "/a/./b", "/.."]) {
      const msg = refusal({ pathPrefix: bad }, {});
      expect(msg, bad).toContain('path prefix must look like "/name[/name...]"');
    }
  });

  it.each([
    ["--listen", { listen: "8080" }, {}, 'listen address must be HOST:PORT, got "8080"'],
    ["--listen", { listen: "localhost" }, {}, "listen address must be HOST:PORT"],
    ["--listen", { listen: "127.0.0.1:99999" }, {}, "listen port must be 0..65535, got 99999"],
    ["--listen", { listen: "127.0.0.1:70000" }, {}, "listen port must be 0..65535, got 70000"],
    ["--listen", { listen: "[::1]" }, {}, "listen address must be HOST:PORT"],
    ["--listen", { listen: "::1:8080" }, {}, "listen address must be HOST:PORT"],
    ["--listen", { listen: "" }, {}, "listen address must be HOST:PORT"],
    ["CONTREE_LISTEN", {}, { CONTREE_LISTEN: "a b:1" }, "listen address must be HOST:PORT"],
    [
      "--runtime",
      { runtime: "docker" },
      {},
      'runtime must be one of auto, gvisor, oci, crun, runc, runsc, got "docker"',
    ],
    [
      "CONTREE_RUNTIME",
      {},
      { CONTREE_RUNTIME: "kata" },
      'runtime must be one of auto, gvisor, oci, crun, runc, runsc, got "kata"',
    ],
    [
      "CONTREE_RUNSC_STATX_FIX",
      {},
      { CONTREE_RUNSC_STATX_FIX: "yes" },
      'CONTREE_RUNSC_STATX_FIX must be auto, on or off, got "yes"',
    ],
    [
      "--log-level",
      { logLevel: "verbose" },
      {},
      'log level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    ],
    [
      "upload",
      {},
      { CONTREE_MAX_UPLOAD_BYTES: "abc" },
      'CONTREE_MAX_UPLOAD_BYTES must be an integer >= 0, got "abc"',
    ],
    ["upload", {}, { CONTREE_MAX_UPLOAD_BYTES: "-1" }, "CONTREE_MAX_UPLOAD_BYTES must be an integer >= 0"],
    ["upload", {}, { CONTREE_MAX_UPLOAD_BYTES: "1.5" }, "CONTREE_MAX_UPLOAD_BYTES must be an integer >= 0"],
    ["upload", {}, { CONTREE_MAX_UPLOAD_BYTES: "1e9" }, "CONTREE_MAX_UPLOAD_BYTES must be an integer >= 0"],
    [
      "upload",
      {},
      { CONTREE_MAX_UPLOAD_BYTES: "99999999999999999999" },
      "CONTREE_MAX_UPLOAD_BYTES must be an integer >= 0",
    ],
    [
      "limit",
      {},
      { CONTREE_INSTANCE_MAX_TIMEOUT: "0" },
      'CONTREE_INSTANCE_MAX_TIMEOUT must be an integer >= 1, got "0"',
    ],
    [
      "retention TTL",
      {},
      { CONTREE_FILES_TTL_SECONDS: "-1" },
      'CONTREE_FILES_TTL_SECONDS must be an integer >= 0, got "-1"',
    ],
    [
      "limit past its ceiling",
      {},
      { CONTREE_INSTANCE_MAX_TIMEOUT: "604801" },
      "CONTREE_INSTANCE_MAX_TIMEOUT must be at most 604800, got 604801",
    ],
    [
      "import limit past its ceiling",
      {},
      { CONTREE_IMAGES_IMPORT_MAX_TIMEOUT: "604801" },
      "CONTREE_IMAGES_IMPORT_MAX_TIMEOUT must be at most 604800, got 604801",
    ],
    [
      "limit",
      {},
      { CONTREE_INSTANCE_MAX_CONCURRENCY: "ten" },
      "CONTREE_INSTANCE_MAX_CONCURRENCY must be an integer >= 1",
    ],
    [
      "limit",
      {},
      { CONTREE_INSTANCE_MAX_LAYER_BYTES: "0" },
      "CONTREE_INSTANCE_MAX_LAYER_BYTES must be an integer >= 1",
    ],
    [
      "limit",
      {},
      { CONTREE_IMAGES_IMPORT_MAX_CONCURRENCY: "-3" },
      "CONTREE_IMAGES_IMPORT_MAX_CONCURRENCY must be an integer >= 1",
    ],
    [
      "limit",
      {},
      { CONTREE_IMAGES_IMPORT_MAX_TIMEOUT: " 5" },
      "CONTREE_IMAGES_IMPORT_MAX_TIMEOUT must be an integer >= 1",
    ],
    [
      "registry",
      {},
      { CONTREE_INSECURE_REGISTRIES: "http://reg:5000" },
      'insecure registry "http://reg:5000" is not HOST[:PORT]',
    ],
    [
      "metrics token",
      {},
      { CONTREE_METRICS_TOKEN: "short" },
      'CONTREE_METRICS_TOKEN must be "public" or 16..512 printable ASCII characters',
    ],
    [
      "private registry",
      {},
      { CONTREE_PRIVATE_REGISTRIES: "127.0.0.1:5000,10.0.0.0/40" },
      'CONTREE_PRIVATE_REGISTRIES: "10.0.0.0/40" is not HOST[:PORT]',
    ],
    [
      "token",
      {},
      { CONTREE_BOOTSTRAP_TOKEN: "short" },
      "CONTREE_BOOTSTRAP_TOKEN must be 8..512 printable ASCII characters",
    ],
    [
      "token",
      {},
      { CONTREE_BOOTSTRAP_TOKEN: "has a space in it" },
      "CONTREE_BOOTSTRAP_TOKEN must be 8..512 printable ASCII",
    ],
    [
      "token",
      {},
      { CONTREE_BOOTSTRAP_TOKEN: "x".repeat(513) },
      "CONTREE_BOOTSTRAP_TOKEN must be 8..512 printable ASCII",
    ],
  ] as Array<[string, ConfigFlags, NodeJS.ProcessEnv, string]>)(
    "refuses a bad %s with a clear message",
    (_what, flags, env, msg) => {
      const m = refusal(flags, env);
      expect(m).toMatch(/^invalid configuration:\n {2}- /);
      expect(m).toContain(msg);
    },
  );

  it("reports every problem at once", () => {
    const m = refusal(
      { listen: "nope", runtime: "docker" },
      { CONTREE_LOG_LEVEL: "loud", CONTREE_MAX_UPLOAD_BYTES: "x" },
    );
    expect(m.split("\n  - ")).toHaveLength(5);
    for (const s of ["listen address", "runtime", "log level", "CONTREE_MAX_UPLOAD_BYTES"])
      expect(m).toContain(s);
  });

  it("accepts boundary values", () => {
    expect(loadConfig({}, { CONTREE_MAX_UPLOAD_BYTES: "0" }).maxUploadBytes).toBe(0);
    expect(loadConfig({}, { CONTREE_INSTANCE_MAX_TIMEOUT: "1" }).defaultLimits.instance_max_timeout).toBe(1);
    // Each limit's ceiling (config/limits.ts) is itself a valid setting.
    for (const [name, spec] of Object.entries(LIMITS)) {
      const cfg = loadConfig({}, { [`CONTREE_${name.toUpperCase()}`]: String(spec.ceiling) });
      expect(cfg.defaultLimits[name as keyof typeof LIMITS]).toBe(spec.ceiling);
    }
    expect(loadConfig({}, { CONTREE_BOOTSTRAP_TOKEN: "12345678" }).bootstrapToken).toBe("12345678");
    expect(loadConfig({ listen: "127.0.0.1:0" }, {}).port).toBe(0);
    expect(loadConfig({ listen: "127.0.0.1:65535" }, {}).port).toBe(65535);
  });

  it("documents every variable it reads", () => {
    for (const name of [
      "CONTREE_DATA_DIR",
      "CONTREE_LISTEN",
      "CONTREE_PATH_PREFIX",
      "CONTREE_LOG_LEVEL",
      "CONTREE_MAX_UPLOAD_BYTES",
      "CONTREE_RUNTIME",
      "CONTREE_INSECURE_REGISTRIES",
      "CONTREE_PRIVATE_REGISTRIES",
      "CONTREE_BOOTSTRAP_TOKEN",
      "CONTREE_INSTANCE_MAX_TIMEOUT",
    ]) {
      expect(ENV_VARS[name], name).toBeTruthy();
    }
  });
});

describe("parseListen", () => {
  it.each([
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    ["localhost:80", { host: "localhost", port: 80 }],
    ["0.0.0.0:0", { host: "0.0.0.0", port: 0 }],
    [":9000", { host: "0.0.0.0", port: 9000 }],
    ["[::1]:8080", { host: "::1", port: 8080 }],
    ["[::]:443", { host: "::", port: 443 }],
    ["[fe80::1:2]:1", { host: "fe80::1:2", port: 1 }],
    ["my-host.example:8443", { host: "my-host.example", port: 8443 }],
  ])("parses %s", (s, expected) => {
    expect(parseListen(s)).toEqual(expected);
  });

  it.each([
    "",
    "8080",
    "host",
    "host:",
    "host:port",
    "[::1]",
    "[::1]8080",
    "::1:8080",
    "[zz::1]:80",
    "h:123456",
    "h:-1",
    "h :1",
  ])("refuses %j", (s) => {
    expect(typeof parseListen(s)).toBe("string");
  });
});
