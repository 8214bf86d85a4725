import type { RouteModule } from "../services.js";
import { adminProjectRoutes } from "./admin-projects.js";
import { adminSecretsRoutes } from "./admin-secrets.js";
import { adminTokenRoutes } from "./admin-tokens.js";
import { adminUsageRoutes } from "./admin-usage.js";
import { eventsRoutes } from "./events.js";
import { filesRoutes } from "./files.js";
import { imagesRoutes } from "./images.js";
import { inspectRoutes } from "./inspect.js";
import { instancesRoutes } from "./instances.js";
import { operationsRoutes } from "./operations.js";
import { portsRoutes } from "./ports.js";
import { subprocessRoutes } from "./subprocesses.js";
import { terminalRoutes } from "./terminal.js";
import { whoamiRoutes } from "./whoami.js";

/** Every route module of `<prefix>/v1`, in registration order. */
export const V1_ROUTES: readonly RouteModule[] = [
  whoamiRoutes,
  filesRoutes,
  imagesRoutes,
  operationsRoutes,
  instancesRoutes,
  eventsRoutes,
  subprocessRoutes,
  inspectRoutes,
  adminUsageRoutes,
  adminProjectRoutes,
  adminTokenRoutes,
  terminalRoutes,
  adminSecretsRoutes,
  portsRoutes,
];
