import type { ProjectLimits } from "../../config/config.js";
import { conflict, notFound } from "../../core/errors.js";
import { isUuid, newId } from "../../core/ids.js";
import type { Executor, ProjectsTable } from "../schema.js";

export interface Project {
  id: string;
  name: string;
  /** Overrides of the server's default limits for this project. */
  limits: Partial<ProjectLimits>;
  /** Egress rules every run of the project gets (docs/egress.md); absent: none. */
  egress?: ProjectEgress;
  createdAt: number;
}

/** Canonical rule texts (runtime/egress-policy.ts); `allow` absent = no allow list. */
export interface ProjectEgress {
  allow?: string[];
  deny?: string[];
}

/** Key of the project's egress rules inside its `limits` JSON (which has no other object value). */
const EGRESS_KEY = "egress";

export const PROJECT_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export class ProjectRepo {
  constructor(private readonly db: Executor) {}

  async create(name: string, now = Date.now()): Promise<Project> {
    const existing = await this.findByName(name);
    if (existing) throw conflict(`project ${JSON.stringify(name)} already exists`);
    const p: Project = { id: newId(), name, limits: {}, createdAt: now };
    await this.db.insertInto("projects").values({ id: p.id, name, limits: "{}", created_at: now }).execute();
    return p;
  }

  async findByName(name: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom("projects").selectAll().where("name", "=", name).executeTakeFirst();
    return row && toProject(row);
  }

  async findById(id: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toProject(row);
  }

  /** By name, or by id when the value looks like one. */
  async resolve(nameOrId: string): Promise<Project> {
    const p = isUuid(nameOrId) ? await this.findById(nameOrId) : await this.findByName(nameOrId);
    if (!p) throw notFound(`project ${JSON.stringify(nameOrId)} not found`);
    return p;
  }

  async list(): Promise<Project[]> {
    const rows = await this.db.selectFrom("projects").selectAll().orderBy("created_at").execute();
    return rows.map(toProject);
  }

  async setLimits(id: string, limits: Partial<ProjectLimits>): Promise<void> {
    const egress = (await this.findById(id))?.egress;
    await this.write(id, limits, egress);
  }

  /** Sets (or with undefined, removes) the project's egress rules. */
  async setEgress(id: string, egress: ProjectEgress | undefined): Promise<void> {
    const p = await this.findById(id);
    if (!p) throw notFound("project not found");
    await this.write(id, p.limits, egress);
  }

  private async write(id: string, limits: Partial<ProjectLimits>, egress: ProjectEgress | undefined) {
    const doc = egress === undefined ? limits : { ...limits, [EGRESS_KEY]: egress };
    await this.db
      .updateTable("projects")
      .set({ limits: JSON.stringify(doc) })
      .where("id", "=", id)
      .execute();
  }
}

function toProject(r: ProjectsTable): Project {
  const { [EGRESS_KEY]: egress, ...limits } = JSON.parse(r.limits) as Partial<ProjectLimits> & {
    [EGRESS_KEY]?: ProjectEgress;
  };
  return {
    id: r.id,
    name: r.name,
    limits,
    ...(egress === undefined ? {} : { egress }),
    createdAt: r.created_at,
  };
}
