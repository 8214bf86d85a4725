import type { ProjectLimits } from "./config.js";

interface LimitSpec {
  /** Server default (CONTREE_<NAME> overrides it, a project row may too). */
  readonly default: number;
  /** Largest value any configuration may give it: the bound request schemas declare. */
  readonly ceiling: number;
  readonly unit: "seconds" | "bytes" | "operations";
  /** The request field it bounds, named in the error text. */
  readonly field?: string;
  /** Smallest value a configuration may give it (1 unless 0 means something: "never"). */
  readonly min?: number;
}

const DAY = 86_400;
const GiB = 1024 ** 3;

/**
 * The per-project limits, the one place they are defined: defaults and bounds of the
 * configuration, the ceilings the request schemas (and so the OpenAPI document) declare, what
 * `whoami` reports and the error a request over a limit gets all come from here.
 */
export const LIMITS: { readonly [K in keyof ProjectLimits]: LimitSpec } = {
  instance_max_timeout: { default: 3600, ceiling: 7 * DAY, unit: "seconds", field: "timeout" },
  instance_max_concurrency: { default: 10, ceiling: 10_000, unit: "operations" },
  instance_max_layer_bytes: {
    default: 12 * GiB,
    ceiling: Number.MAX_SAFE_INTEGER,
    unit: "bytes",
    field: "resources_limits.max_layer_bytes",
  },
  images_import_max_concurrency: { default: 5, ceiling: 10_000, unit: "operations" },
  images_import_max_timeout: { default: 3600, ceiling: 7 * DAY, unit: "seconds", field: "timeout" },
  images_import_max_unpacked_bytes: { default: 16 * GiB, ceiling: Number.MAX_SAFE_INTEGER, unit: "bytes" },
  // Retention (images/retention.ts): 0 keeps everything forever.
  images_ttl_seconds: { default: 7 * DAY, ceiling: 100 * 365 * DAY, unit: "seconds", min: 0 },
  files_ttl_seconds: { default: DAY, ceiling: 100 * 365 * DAY, unit: "seconds", min: 0 },
  // Over it new runs and imports are refused (409); the default, the ceiling, means no quota.
  storage_max_bytes: { default: Number.MAX_SAFE_INTEGER, ceiling: Number.MAX_SAFE_INTEGER, unit: "bytes" },
};

export type LimitName = keyof ProjectLimits;

export const DEFAULT_LIMITS: ProjectLimits = Object.fromEntries(
  Object.entries(LIMITS).map(([k, v]) => [k, v.default]),
) as unknown as ProjectLimits;

/**
 * The limits in force for a project: server defaults overridden by the project's own, never
 * above a limit's ceiling (a row written before a ceiling existed cannot advertise more than
 * a request may ask for).
 */
export function effectiveLimits(
  defaults: ProjectLimits,
  project: { readonly limits: Partial<ProjectLimits> },
): ProjectLimits {
  const merged = { ...defaults, ...project.limits };
  for (const name of Object.keys(LIMITS) as LimitName[])
    merged[name] = Math.min(merged[name], LIMITS[name].ceiling);
  return merged;
}

/** The error a request asking for more than `value` of a limit gets (whoami shows the same value). */
export function overLimitMessage(name: LimitName, value: number): string {
  const spec = LIMITS[name];
  return `${spec.field ?? name} must be at most ${value} ${spec.unit} (${name})`;
}

/** `NAME=VALUE` from the command line (`project update --set`), checked like the environment's. */
export function parseLimitSetting(setting: string): [LimitName, number] {
  const eq = setting.indexOf("=");
  const name = setting.slice(0, eq < 0 ? setting.length : eq).trim();
  if (!(name in LIMITS))
    throw new RangeError(`unknown limit ${JSON.stringify(name)}; known: ${Object.keys(LIMITS).join(", ")}`);
  const spec = LIMITS[name as LimitName];
  const raw = eq < 0 ? "" : setting.slice(eq + 1).trim();
  const n = Number(raw);
  const min = spec.min ?? 1;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > spec.ceiling)
    throw new RangeError(
      `${name} must be an integer ${min}..${spec.ceiling} (${spec.unit}), got ${JSON.stringify(raw)}`,
    );
  return [name as LimitName, n];
}
