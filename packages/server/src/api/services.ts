import type { McpHttpEndpoint } from "@contree/mcp";
import type { PortUrlSigner } from "../auth/port-url-signer.js";
import type { Principal } from "../auth/principal.js";
import type { AccessAdmin } from "../auth/token-admin.js";
import type { Config } from "../config/config.js";
import type { FileService } from "../files/file-service.js";
import type { ImageService } from "../images/image-service.js";
import type { ImportBody } from "../images/import-body.js";
import type { InspectService } from "../inspect/inspect-service.js";
import type { InstanceService } from "../instances/instance-service.js";
import type { LiveInstances } from "../instances/live-instances.js";
import type { OperationFilter, OperationRecord } from "../metadata/repos/operation-repo.js";
import type { Project } from "../metadata/repos/project-repo.js";
import type { Logger } from "../observability/logger.js";
import type { MetricsRegistry } from "../observability/metrics.js";
import type { EventLog } from "../operations/event-log.js";
import type { OutputStore } from "../outputs/output-store.js";
import type { SecretInfo } from "../secrets/secret-service.js";
import type { Snapshotter } from "../snapshots/snapshotter.js";
import type { UsageView } from "../snapshots/usage-view.js";
import type { ApiApp } from "./api-app.js";
import type { HeavyGate } from "./heavy-gate.js";

/** Bearer token (and `Project` header) → who is asking. */
export interface Authenticator {
  authenticate(authorization: string | undefined, project: string | undefined): Promise<Principal>;
}

/** The operations a caller may see and cancel. */
export interface Operations {
  /** An operation by id, within a project when one is given. */
  get(id: string, projectId?: string): Promise<OperationRecord | undefined>;
  list(projectId: string, filter: OperationFilter): Promise<OperationRecord[]>;
  /** The project's operations counted per status (whoami's `operations_stat`). */
  stats(projectId: string): Promise<Record<string, number>>;
  cancel(projectId: string, id: string): Promise<OperationRecord>;
}

/** Starts `image_import` operations. */
export interface Imports {
  start(project: Project, body: ImportBody, maxTimeout: number): Promise<OperationRecord>;
}

/**
 * Everything the HTTP layer uses, built once by the composition root (`main.ts`). Routes reach
 * the system only through these: none constructs a service or touches a repository.
 */
export interface Services {
  config: Config;
  logger: Logger;
  metrics: MetricsRegistry;
  auth: Authenticator;
  /** Refuses new writes (507) while the data filesystem is nearly full; reads are never refused. */
  storage?: { assertWritable(): void };
  files: FileService;
  images: ImageService;
  imports: Imports;
  instances: InstanceService;
  /** Running sandboxes: subprocesses, stdin, signals. */
  live: LiveInstances;
  operations: Operations;
  events: EventLog;
  inspect: InspectService;
  /** Read-only views of images (inspect reads through them; each is leased until released). */
  snapshots: Pick<Snapshotter, "view">;
  /** Stored run output, read back when a document or event refers to it. */
  outputs: OutputStore;
  /** Storage usage per project from the last usage pass (`GET /v1/admin/usage`). */
  usage?: { view(project?: string): Promise<UsageView> };
  /** Slots of heavy requests (streamed output, downloads, greps) per token/project. */
  gate: HeavyGate;
  /** MCP over streamable HTTP at `<prefix>/mcp` (absent: no /mcp route). */
  mcp?: McpHttpEndpoint;
  /** Projects and tokens for admin tokens (`/v1/admin/projects`, `/v1/admin/tokens`). */
  admin?: AccessAdmin;
  /** The built web console served at `<prefix>/ui/` (default: the server package's `dist/ui`). */
  uiDir?: string;
  /** Exposed ports: the signed-URL signer and the per-instance connection limit (docs/ports.md). */
  ports?: { signer: PortUrlSigner; maxConnectionsPerInstance: number };
  /** Project secrets by project name or id (`/v1/admin/secrets`; absent: no such routes). */
  secrets?: SecretAdmin;
}

/** What the admin API may do with secrets: never read a value back. */
export interface SecretAdmin {
  set(
    project: string,
    name: string,
    value: Buffer,
    policy: { hosts?: readonly string[]; allowEnv?: boolean },
  ): Promise<{ created: boolean; info: SecretInfo }>;
  list(project: string): Promise<SecretInfo[]>;
  delete(project: string, name: string): Promise<void>;
}

/**
 * The one shape of a route module: given the services, a Fastify plugin that registers its
 * routes.
 */
export type RouteModule = (services: Services) => (app: ApiApp) => Promise<void>;
