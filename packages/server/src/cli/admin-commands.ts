import type { Command } from "commander";
import { allPermissions, issueToken, parsePermissions } from "../auth/tokens.js";
import type { ProjectLimits } from "../config/config.js";
import { LIMITS, type LimitName, parseLimitSetting } from "../config/limits.js";
import { loadConfig } from "../config/load-config.js";
import { invalidArgument } from "../core/errors.js";
import { isoMicros } from "../core/time.js";
import { openMetadata } from "../main.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { ProjectEgress } from "../metadata/repos/project-repo.js";
import { PROJECT_NAME_RE } from "../metadata/repos/project-repo.js";
import { PERMISSIONS } from "../metadata/repos/token-repo.js";
import { parseEgressRule, ruleText } from "../runtime/egress-policy.js";

/** `--limit NAME=VALUE` arguments over a project's overrides: VALUE an integer 0..ceiling, or "default". */
/** Admin commands work directly on the data dir (SQLite allows a running server beside them). */
async function withStore<T>(dataDir: string | undefined, fn: (s: MetadataStore) => Promise<T>): Promise<T> {
  const config = loadConfig({ dataDir });
  const store = openMetadata(config.dataDir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const out = (s: string) => process.stdout.write(`${s}\n`);
const collect = (v: string, all: string[]) => [...all, v];

export function registerAdminCommands(program: Command): void {
  const project = program.command("project").description("manage projects (tenants)");
  project
    .command("create <name>")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (name: string, opts: { dataDir?: string }) => {
      if (!PROJECT_NAME_RE.test(name))
        throw invalidArgument("project name must match [a-z0-9][a-z0-9_.-]{0,62}");
      await withStore(opts.dataDir, async (s) => {
        const p = await s.projects.create(name);
        out(`${p.id}\t${p.name}`);
      });
    });
  project
    .command("list")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (opts: { dataDir?: string }) => {
      await withStore(opts.dataDir, async (s) => {
        for (const p of await s.projects.list()) out(`${p.id}\t${p.name}\t${isoMicros(p.createdAt)}`);
      });
    });
  project
    .command("update <name>")
    .description("override the server's default limits for a project (shown by whoami `limits`)")
    .option("--set <name=value>", `set a limit (repeatable): ${Object.keys(LIMITS).join(", ")}`, collect, [])
    .option("--unset <name>", "back to the server default (repeatable)", collect, [])
    .option("--egress-allow <rule>", "the project's egress allow list (repeatable; replaces it)", collect, [])
    .option("--egress-deny <rule>", "the project's egress deny list (repeatable; replaces it)", collect, [])
    .option("--egress-clear", "remove the project's egress rules (before any --egress-allow/--egress-deny)")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (name: string, opts: ProjectUpdateOptions) => {
      const egressChange = projectEgressChange(opts);
      const updates: Partial<ProjectLimits> = {};
      try {
        for (const s of opts.set) {
          const [k, v] = parseLimitSetting(s);
          updates[k] = v;
        }
        for (const k of opts.unset) parseLimitSetting(`${k}=${LIMITS[k as LimitName]?.default ?? ""}`);
      } catch (e) {
        throw invalidArgument((e as Error).message);
      }
      await withStore(opts.dataDir, async (s) => {
        const p = await s.projects.resolve(name);
        const limits: Partial<ProjectLimits> = { ...p.limits, ...updates };
        for (const k of opts.unset) delete limits[k as LimitName];
        await s.projects.setLimits(p.id, limits);
        let egress = p.egress;
        if (egressChange !== null) {
          egress = egressChange(p.egress);
          await s.projects.setEgress(p.id, egress);
        }
        for (const [k, v] of Object.entries(limits)) out(`${k}\t${v}`);
        for (const [k, v] of Object.entries(egress ?? {})) out(`egress.${k}\t${(v as string[]).join(",")}`);
      });
    });

  const token = program.command("token").description("manage API tokens");
  token
    .command("create")
    .requiredOption("--project <name>", "project the token belongs to")
    .option("--permissions <list>", `comma-separated subset of: ${PERMISSIONS.join(",")} (default: all)`)
    .option("--admin", "may select any project with the Project header")
    .option("--expires-in <days>", "expire after this many days")
    .option("--description <text>", "free text shown by token list")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(
      async (opts: {
        project: string;
        permissions?: string;
        admin?: boolean;
        expiresIn?: string;
        description?: string;
        dataDir?: string;
      }) => {
        const permissions =
          opts.permissions === undefined ? allPermissions(true) : parsePermissions(opts.permissions);
        let expiresAt: number | null = null;
        if (opts.expiresIn !== undefined) {
          const days = Number(opts.expiresIn);
          if (!Number.isFinite(days) || days <= 0)
            throw invalidArgument("--expires-in must be a positive number of days");
          expiresAt = Math.floor(Date.now() / 1000 + days * 86400);
        }
        await withStore(opts.dataDir, async (s) => {
          const p = await s.projects.resolve(opts.project);
          const issued = await issueToken(s, {
            projectId: p.id,
            admin: opts.admin ?? false,
            permissions,
            description: opts.description ?? "",
            expiresAt,
          });
          process.stderr.write(
            `token ${issued.record.id} created for project ${p.name}; the secret below is shown once:\n`,
          );
          out(issued.secret);
        });
      },
    );
  token
    .command("list")
    .option("--project <name>", "only this project's tokens")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (opts: { project?: string; dataDir?: string }) => {
      await withStore(opts.dataDir, async (s) => {
        const projects = new Map((await s.projects.list()).map((p) => [p.id, p.name]));
        const only = opts.project === undefined ? undefined : (await s.projects.resolve(opts.project)).id;
        out("ID\tPROJECT\tADMIN\tPERMISSIONS\tCREATED\tEXPIRES\tSTATE\tDESCRIPTION");
        for (const t of await s.tokens.list(only)) {
          const perms = PERMISSIONS.filter((p) => t.permissions[p]).join(",") || "-";
          const state =
            t.revokedAt !== null
              ? "revoked"
              : t.expiresAt !== null && t.expiresAt * 1000 < Date.now()
                ? "expired"
                : "active";
          out(
            [
              t.id,
              projects.get(t.projectId) ?? t.projectId,
              t.admin ? "yes" : "no",
              perms,
              isoMicros(t.createdAt),
              t.expiresAt === null ? "-" : isoMicros(t.expiresAt * 1000),
              state,
              t.description,
            ].join("\t"),
          );
        }
      });
    });
  token
    .command("revoke <id>")
    .option("--data-dir <dir>", "data directory (env CONTREE_DATA_DIR)")
    .action(async (id: string, opts: { dataDir?: string }) => {
      await withStore(opts.dataDir, async (s) => {
        await s.tokens.revoke(id);
        out(`revoked ${id}`);
      });
    });
}

interface ProjectUpdateOptions {
  set: string[];
  unset: string[];
  egressAllow: string[];
  egressDeny: string[];
  egressClear?: boolean;
  dataDir?: string;
}

/** How the --egress-* flags change a project's rules (null: they were not given); rules checked first. */
function projectEgressChange(
  o: ProjectUpdateOptions,
): ((old: ProjectEgress | undefined) => ProjectEgress | undefined) | null {
  if (o.egressAllow.length === 0 && o.egressDeny.length === 0 && o.egressClear !== true) return null;
  const canonical = (list: string[], flag: string) =>
    list.map((text) => {
      const rule = parseEgressRule(text);
      if (typeof rule === "string") throw invalidArgument(`${flag} ${JSON.stringify(text)} ${rule}`);
      return ruleText(rule);
    });
  const allow = canonical(o.egressAllow, "--egress-allow");
  const deny = canonical(o.egressDeny, "--egress-deny");
  return (old) => {
    const next: ProjectEgress = o.egressClear === true ? {} : { ...old };
    if (allow.length > 0) next.allow = allow;
    if (deny.length > 0) next.deny = deny;
    return next.allow === undefined && next.deny === undefined ? undefined : next;
  };
}
