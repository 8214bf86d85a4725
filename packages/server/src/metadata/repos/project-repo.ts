import type { ProjectLimits } from "../../config/config.js";
import { conflict, notFound } from "../../core/errors.js";
import { isUuid, newId } from "../../core/ids.js";
import type { Executor, ProjectsTable } from "../schema.js";

export interface Project {
  id: string;
  name: string;
  /** Overrides of the server's default limits for this project. */
  limits: Partial<ProjectLimits>;
  createdAt: number;
}

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
    await this.db
      .updateTable("projects")
      .set({ limits: JSON.stringify(limits) })
      .where("id", "=", id)
      .execute();
  }
}

function toProject(r: ProjectsTable): Project {
  return {
    id: r.id,
    name: r.name,
    limits: JSON.parse(r.limits) as Partial<ProjectLimits>,
    createdAt: r.created_at,
  };
}
