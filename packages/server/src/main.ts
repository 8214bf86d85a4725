/**
 * Composition root: the only module that picks concrete backends. Everything else receives its
 * dependencies as arguments, so tests build the same graph with other choices.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./api/app.js";
import { HeavyGate } from "./api/heavy-gate.js";
import { eventsRoutes } from "./api/routes/events.js";
import { imagesRoutes } from "./api/routes/images.js";
import { inspectRoutes } from "./api/routes/inspect.js";
import { instancesRoutes } from "./api/routes/instances.js";
import { operationsRoutes } from "./api/routes/operations.js";
import { subprocessRoutes } from "./api/routes/subprocesses.js";
import { bootstrap } from "./auth/bootstrap.js";
import type { Config } from "./config/config.js";
import { effectiveLimits } from "./config/limits.js";
import { LocalContentStore } from "./content/local/local-content-store.js";
import { Compactor } from "./images/compactor.js";
import { ImageImporter } from "./images/image-importer.js";
import { ImageService } from "./images/image-service.js";
import { ImportHandler } from "./images/import-handler.js";
import { LayerStore } from "./images/layer-store.js";
import { InstanceHandler } from "./instances/instance-handler.js";
import { InstanceService } from "./instances/instance-service.js";
import { LiveInstances } from "./instances/live-instances.js";
import type { MetadataStore } from "./metadata/metadata-store.js";
import { SqliteMetadataStore } from "./metadata/sqlite/sqlite-metadata-store.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { MetricsRegistry } from "./observability/metrics.js";
import { EventLog } from "./operations/event-log.js";
import { OperationQueue } from "./operations/operation-queue.js";
import { LocalOutputStore } from "./outputs/local/local-output-store.js";
import { HttpRegistryClient } from "./registry/http-registry-client.js";
import { reclaim as reclaimSandboxes, selectDriver } from "./runtime/index.js";
import { nativeSysUnavailableReason } from "./sys/native-sys.js";

export interface DataLayout {
  root: string;
  database: string;
  content: string;
}

export function dataLayout(
  dataDir: string,
): DataLayout & { runs: string; runtimeState: string; selfTest: string; outputs: string } {
  return {
    root: dataDir,
    database: join(dataDir, "metadata.db"),
    content: join(dataDir, "content"),
    outputs: join(dataDir, "outputs"),
    runs: join(dataDir, "runs"),
    runtimeState: join(dataDir, "runtime"),
    selfTest: join(dataDir, "selftest"),
  };
}

export function openMetadata(dataDir: string): MetadataStore {
  return SqliteMetadataStore.open(dataLayout(dataDir).database);
}

export interface Server {
  app: FastifyInstance;
  /** The sandbox runtime in use (name, kind, isolation). */
  runtime: { name: string; kind: string; isolation: string };
  store: MetadataStore;
  logger: Logger;
  /** Heavy requests in flight per token/project (read by tests and metrics). */
  heavy: HeavyGate;
  /** Set on the very first start when a token was created. */
  bootstrapToken?: { secret: string; generated: boolean };
  close(): Promise<void>;
}

/** Builds the whole server for a configuration, without listening. */
export async function createServer(
  config: Config,
  logger: Logger = createLogger(config.logLevel),
): Promise<Server> {
  const layout = dataLayout(config.dataDir);
  await mkdir(layout.root, { recursive: true, mode: 0o700 });
  const store = openMetadata(config.dataDir);
  const content = await LocalContentStore.open(layout.content);
  const reclaimed = await content.reclaim();
  if (reclaimed > 0) logger.info({ reclaimed }, "removed unfinished uploads left by an earlier run");
  const boot = await bootstrap(store, config.bootstrapToken);
  const outputs = await LocalOutputStore.open(layout.outputs);
  // Streams are created only for operations that have a row: anything else was left by a crash.
  const orphanOutputs = await outputs.reclaim(async (id) => (await store.operations.get(id)) !== undefined);
  if (orphanOutputs > 0) logger.info({ orphanOutputs }, "removed output of operations that no longer exist");
  const metrics = new MetricsRegistry();

  const layers = await LayerStore.open(layout.root);
  const reclaimedLayers = await layers.reclaim(new Set(await store.images.allLayerIds()));
  if (reclaimedLayers.staging + reclaimedLayers.orphans > 0)
    logger.info(reclaimedLayers, "removed half-written layers left by an earlier run");
  const registry = new HttpRegistryClient({ insecureRegistries: config.insecureRegistries });
  const images = new ImageService(store);
  const importer = new ImageImporter(store, layers);
  const imports = new ImportHandler(store, registry, importer);
  // Nothing runs yet: every sandbox, mount and run dir still here was left by a crash.
  const swept = await reclaimSandboxes({ stateDir: layout.runtimeState, mountRoots: [layout.runs] });
  await rm(layout.runs, { recursive: true, force: true });
  await mkdir(layout.runs, { recursive: true, mode: 0o700 });
  if (swept.containers + swept.mounts + swept.cgroups + swept.netns > 0)
    logger.info(swept, "reclaimed sandboxes left by an earlier run");
  const { driver, report } = await selectDriver(config.runtime, {
    stateDir: layout.runtimeState,
    workDir: layout.selfTest,
  });
  logger.info(
    {
      runtime: driver.name,
      kind: driver.kind,
      version: report.find((r) => r.name === driver.name)?.version,
      isolation: driver.isolation,
      report,
    },
    "sandbox runtime selected",
  );
  const nativeMissing = nativeSysUnavailableReason();
  if (nativeMissing !== null)
    logger.warn(
      { reason: nativeMissing },
      "native addon not in use: runs spawn mount/umount and fork the server for every process (slower)",
    );
  const compactor = new Compactor(store, layers, layout.runs, logger);
  const live = new LiveInstances(outputs);
  const instanceHandler = new InstanceHandler({
    onImage: (img) => compactor.consider(img),
    live,
    store,
    layers,
    content,
    outputs,
    driver,
    runsDir: layout.runs,
    logger,
    limits: {
      memoryBytes: config.sandbox.memoryBytes,
      pids: config.sandbox.pids,
      ...(config.sandbox.cpus === undefined ? {} : { cpuQuota: config.sandbox.cpus }),
    },
  });
  const events = new EventLog(store.operations);
  const queue = new OperationQueue({
    store,
    events,
    logger,
    handlers: [imports, instanceHandler],
    limitsOf: async (projectId) => {
      const p = await store.projects.findById(projectId);
      return p ? effectiveLimits(config.defaultLimits, p) : config.defaultLimits;
    },
  });
  const failed = await queue.recover();
  if (failed > 0) logger.warn({ failed }, "operations interrupted by a restart were marked FAILED");

  const gate = new HeavyGate(config.heavyRequests);
  const app = await buildApp({
    config,
    logger,
    store,
    content,
    metrics,
    plugins: [
      imagesRoutes({ config, images, imports, queue }),
      operationsRoutes({ store, queue, outputs, gate }),
      instancesRoutes({
        config,
        instances: new InstanceService(config, store, images, queue, config.defaultNetworking, outputs),
      }),
      eventsRoutes({ store, events, outputs, gate }),
      subprocessRoutes({ store, live, outputs, gate }),
      inspectRoutes({ images, layers, gate }),
    ],
  });
  queue.start();
  let closed = false;
  return {
    app,
    runtime: { name: driver.name, kind: driver.kind, isolation: driver.isolation },
    store,
    logger,
    heavy: gate,
    ...(boot.createdToken ? { bootstrapToken: boot.createdToken } : {}),
    async close() {
      if (closed) return;
      closed = true;
      await queue.close();
      await compactor.close();
      await app.close();
      await store.close();
    },
  };
}
