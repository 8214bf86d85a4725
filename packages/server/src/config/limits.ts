import type { Project } from "../metadata/repos/project-repo.js";
import type { ProjectLimits } from "./config.js";

/** The limits in force for a project: server defaults overridden by the project's own. */
export function effectiveLimits(defaults: ProjectLimits, project: Project): ProjectLimits {
  return { ...defaults, ...project.limits };
}
