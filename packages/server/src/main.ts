/**
 * Composition root: the only module that picks concrete backends. Everything else receives its
 * dependencies as arguments, so tests build the same graph with other choices.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { createMcpHttpEndpoint } from "@contree/mcp";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./api/app.js";
import { HeavyGate } from "./api/heavy-gate.js";
import { V1_ROUTES } from "./api/routes/index.js";
import { terminalTarget, terminalUpgrade } from "./api/terminal-socket.js";
import { bootstrap, PUBLIC_PROJECT } from "./auth/bootstrap.js";
import { loadPortUrlSigner } from "./auth/port-url-signer.js";
import { authenticate } from "./auth/principal.js";
import { accessAdmin } from "./auth/token-admin.js";
import type { Config } from "./config/config.js";
import { effectiveLimits } from "./config/limits.js";
import { LocalContentStore } from "./content/local/local-content-store.js";
import { internal } from "./core/errors.js";
import { FileService } from "./files/file-service.js";
import { CredentialVault } from "./images/credential-vault.js";
import { ImageImporter } from "./images/image-importer.js";
import { ImageService } from "./images/image-service.js";
import { ImportHandler } from "./images/import-handler.js";
import { Retention } from "./images/retention.js";
import { InspectService } from "./inspect/inspect-service.js";
import { InstanceHandler } from "./instances/instance-handler.js";
import { InstanceService } from "./instances/instance-service.js";
import { LiveInstances } from "./instances/live-instances.js";
import type { MetadataStore } from "./metadata/metadata-store.js";
import { ACTIVE_STATUSES } from "./metadata/repos/operation-repo.js";
import { operationStats } from "./metadata/repos/operation-stats.js";
import type { Project } from "./metadata/repos/project-repo.js";
import { SecretRepo } from "./metadata/repos/secret-repo.js";
import { SqliteMetadataStore } from "./metadata/sqlite/sqlite-metadata-store.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { MetricsRegistry } from "./observability/metrics.js";
import { ProcessMetrics } from "./observability/process-metrics.js";
import { ServerMetrics } from "./observability/server-metrics.js";
import { type ObservedGcReport, StorageMetrics } from "./observability/storage-metrics.js";
import { EventLog } from "./operations/event-log.js";
import type { OperationHandler } from "./operations/operation-handler.js";
import { OperationQueue } from "./operations/operation-queue.js";
import { LocalOutputStore } from "./outputs/local/local-output-store.js";
import { DestinationPolicy } from "./registry/destination-policy.js";
import { HttpRegistryClient } from "./registry/http-registry-client.js";
import { sharedBindFile } from "./runtime/bind-files.js";
import { explainSelection, reclaim as reclaimSandboxes, selectDriver } from "./runtime/index.js";
import { HeaderProxy } from "./secrets/header-proxy.js";
import { ProxyCa } from "./secrets/proxy-ca.js";
import { KeySource, parseKeyText } from "./secrets/secret-cipher.js";
import { SecretService } from "./secrets/secret-service.js";
import { GarbageCollector } from "./snapshots/gc/garbage-collector.js";
import { LayerStore } from "./snapshots/layer-store.js";
import { LeaseManager } from "./snapshots/leases.js";
import { OverlaySnapshotter } from "./snapshots/overlay/overlay-snapshotter.js";
import { selectScratch } from "./snapshots/overlay/scratch/select-scratch.js";
import { UsageTracker } from "./snapshots/usage-tracker.js";
import { usageView } from "./snapshots/usage-view.js";
import { DiskGuard } from "./storage/disk-guard.js";
import { nativeSysUnavailableReason, WATCHDOG } from "./sys/native-sys.js";

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

/** Project secrets over `store`, sealed with CONTREE_SECRETS_KEY or `<data dir>/secrets.key`. */
export function openSecrets(
  config: Pick<Config, "dataDir" | "secretsKey">,
  store: MetadataStore,
): SecretService {
  const configured = config.secretsKey === undefined ? undefined : parseKeyText(config.secretsKey);
  return new SecretService(
    new SecretRepo(store.db),
    new KeySource({ configured, file: join(config.dataDir, "secrets.key") }),
  );
}

export interface Server {
  app: FastifyInstance;
  /** The sandbox runtime in use (name, kind, isolation) and why this host got it. */
  runtime: { name: string; kind: string; isolation: string; why: string };
  /** How max_layer_bytes is enforced (snapshots/overlay/scratch) and why. */
  scratch: { backend: string; enforced: boolean; reason: string };
  store: MetadataStore;
  logger: Logger;
  /** Heavy requests in flight per token/project (read by tests and metrics). */
  heavy: HeavyGate;
  /** Mark-and-sweep of images, layers, blobs and dirs (runs on a schedule; `run()` for one pass now). */
  gc: GarbageCollector;
  /** Storage usage per project (the cached figure the quota checks). */
  usage: UsageTracker;
  /** The GC's `onReport` observer: metrics, and a fresh usage figure after a pass. */
  gcObserved(report: ObservedGcReport): void;
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
  await mkdir(layout.root, { recursive: true, mode: 0o711 });
  // Sandboxes in user namespaces are unprivileged host uids: the runtime, acting as one, must
  // pass through here to their rootfs (runs/<op>/rootfs). Search only: nothing can be listed.
  await chmod(layout.root, 0o711);
  const store = openMetadata(config.dataDir);
  const secrets = openSecrets(config, store);
  // Read: the runtimes and helpers the server starts need not inherit it.
  if (config.secretsKey !== undefined && process.env["CONTREE_SECRETS_KEY"] === config.secretsKey)
    delete process.env["CONTREE_SECRETS_KEY"];
  const content = await LocalContentStore.open(layout.content);
  // Every tenant's uploads and outputs: the root above stays traversable, these do not.
  await chmod(layout.content, 0o700);
  // Short of space, the disk guard asks for an early GC pass: the GC adds its `requestEarly`.
  const earlyGc = new Set<() => void>();
  const disk = new DiskGuard({
    dataDir: layout.root,
    ...config.storage,
    logger,
    onPressure: () => {
      for (const request of earlyGc) request();
    },
  });
  await disk.start();
  const reclaimed = await content.reclaim();
  if (reclaimed > 0) logger.info({ reclaimed }, "removed unfinished uploads left by an earlier run");
  const boot = await bootstrap(store, config.bootstrapToken);
  const outputs = await LocalOutputStore.open(layout.outputs);
  await chmod(layout.outputs, 0o700);
  // Streams are created only for operations that have a row: anything else was left by a crash.
  const orphanOutputs = await outputs.reclaim(async (id) => (await store.operations.get(id)) !== undefined);
  if (orphanOutputs > 0) logger.info({ orphanOutputs }, "removed output of operations that no longer exist");
  const metrics = new MetricsRegistry();
  const serverMetrics = new ServerMetrics(metrics, {
    activeOperations: () => store.operations.countByStatus(ACTIVE_STATUSES),
    kindOf: async (id) => (await store.operations.get(id))?.kind,
    storage: () => {
      let refusingWrites = false;
      try {
        disk.assertWritable();
      } catch {
        refusingWrites = true;
      }
      return { freeBytes: disk.free(), refusingWrites };
    },
  });
  const processMetrics = new ProcessMetrics(metrics);
  const usage = new UsageTracker({
    usage: store.usage,
    publicProjectId: async () => (await store.projects.findByName(PUBLIC_PROJECT))?.id,
    logger,
  });
  const storageMetrics = new StorageMetrics(metrics, {
    usage: () => usage.latest(),
    databaseFiles: [layout.database, `${layout.database}-wal`],
  });
  const assertQuota = (p: Project) =>
    usage.assertWithinQuota(p, effectiveLimits(config.defaultLimits, p).storage_max_bytes);
  const gcObserved = (report: ObservedGcReport): void => {
    storageMetrics.gcObserved(report);
    if (!report.dryRun)
      void usage.refresh().catch((err) => logger.warn({ err }, "storage usage pass failed"));
  };
  // The queue wait ends where a handler takes the operation (EXECUTING, `startedAt` set).
  const timed = (h: OperationHandler): OperationHandler => ({
    kind: h.kind,
    run: (op, ctx) => {
      serverMetrics.operationStarted(op);
      return h.run(op, ctx);
    },
  });

  const layers = await LayerStore.open(layout.root);
  const reclaimedLayers = await layers.reclaim(new Set(await store.images.allLayerIds()));
  const legacyDevices = await layers.neutralizeLegacyDevices();
  if (legacyDevices) logger.info({ replaced: legacyDevices }, "device nodes in older layers made inert");
  if (reclaimedLayers.staging + reclaimedLayers.orphans > 0)
    logger.info(reclaimedLayers, "removed half-written layers left by an earlier run");
  const registry = new HttpRegistryClient({
    insecureRegistries: config.insecureRegistries,
    privateRegistries: config.privateRegistries,
    onRefused: (r, address) =>
      logger.warn(
        { host: r.destination.hostname, port: r.destination.port, address, scope: r.verdict.scope },
        "registry destination refused (allow it with CONTREE_PRIVATE_REGISTRIES)",
      ),
  });
  const images = new ImageService(store);
  const importer = new ImageImporter(store, layers, disk);
  const imports = new ImportHandler(
    store,
    registry,
    importer,
    await CredentialVault.open(join(layout.root, "import-credentials")),
    (p) => effectiveLimits(config.defaultLimits, p).images_import_max_unpacked_bytes,
    assertQuota,
  );
  // Nothing runs yet: every sandbox, mount and run dir still here was left by a crash.
  // Self-tests mount too (runsc's statx workaround): a crash mid-self-test leaves one there.
  const swept = await reclaimSandboxes({
    stateDir: layout.runtimeState,
    mountRoots: [layout.runs, layout.selfTest],
  });
  await rm(layout.runs, { recursive: true, force: true });
  await mkdir(layout.runs, { recursive: true, mode: 0o711 });
  if (swept.containers + swept.mounts + swept.cgroups + swept.netns > 0)
    logger.info(swept, "reclaimed sandboxes left by an earlier run");
  const { driver, report } = await selectDriver(config.runtime, {
    stateDir: layout.runtimeState,
    workDir: layout.selfTest,
    runscStatxFix: config.runscStatxFix,
    egress: {
      ...(config.sandboxDns === undefined ? {} : { dnsServers: config.sandboxDns }),
      ...(config.egressAllowPrivate === undefined ? {} : { released: config.egressAllowPrivate }),
    },
  });
  logger.info(
    {
      runtime: driver.name,
      kind: driver.kind,
      version: report.find((r) => r.name === driver.name)?.version,
      isolation: driver.isolation,
      why: explainSelection(report, driver.name),
      report,
    },
    "sandbox runtime selected",
  );
  if (!existsSync(WATCHDOG))
    logger.warn(
      { helper: WATCHDOG },
      "sandbox watchdog not built (`npm run build`): if the server dies, its sandboxes outlive their timeouts until the next start",
    );
  const nativeMissing = nativeSysUnavailableReason();
  if (nativeMissing !== null)
    logger.warn(
      { reason: nativeMissing },
      "native addon not in use: runs spawn mount/umount and fork the server for every process (slower)",
    );
  const scratch = await selectScratch({
    mode: config.scratch.mode,
    runsDir: layout.runs,
    layersDir: layers.layersDir,
    tmpfsMaxBytes: config.scratch.tmpfsMaxBytes,
    warmCapBytes: config.defaultLimits.instance_max_layer_bytes,
    logger,
  });
  (scratch.backend.enforced ? logger.info.bind(logger) : logger.warn.bind(logger))(
    { scratch: scratch.backend.name, reason: scratch.reason, probes: scratch.probes },
    "run scratch selected (how max_layer_bytes is enforced)",
  );
  const leases = new LeaseManager(store);
  const snapshots = new OverlaySnapshotter({
    store,
    layers,
    content,
    leases,
    scratch: scratch.backend,
    runsDir: layout.runs,
    logger,
  });
  const live = new LiveInstances(outputs, logger);
  const pins = config.secretProxyHosts;
  // The proxy's own CA (made once per data dir): only header-mode runs' HTTPS meets it.
  // Made on the first header-mode run, not at start (RSA keys: a few hundred ms).
  let caReady: Promise<{ ca: ProxyCa; bundle: string }> | undefined;
  const proxyCa = () => {
    caReady ??= (async () => {
      const ca = await ProxyCa.open(join(layout.root, "proxy-ca"));
      const file = await ca.bundleFile();
      return { ca, bundle: (await sharedBindFile(file, "contree-ca-bundle")) ?? file };
    })().catch((err: unknown) => {
      caReady = undefined;
      throw err;
    });
    return caReady;
  };
  const headerProxy = new HeaderProxy({
    policy: new DestinationPolicy(config.secretProxyPrivate ?? []),
    dataDir: layout.root,
    logger,
    ca: async () => (await proxyCa()).ca,
    upstreamCa: [
      ...rootCertificates,
      ...(config.secretProxyCaFile === undefined ? [] : [await readFile(config.secretProxyCaFile, "utf8")]),
    ],
    ...(pins === undefined ? {} : { pins }),
  });
  // Nothing runs yet: a redirect of this data dir's proxy still in place was left by a crash.
  const staleRedirects = await headerProxy.reclaim();
  if (staleRedirects > 0)
    logger.info({ staleRedirects }, "removed secrets proxy redirects left by an earlier run");
  const instanceHandler = new InstanceHandler({
    live,
    store,
    snapshots,
    outputs,
    driver,
    disk,
    logger,
    observeStage: (stage, seconds) => serverMetrics.observeRunStage(stage, seconds),
    secrets,
    headerProxy,
    // On the bind tmpfs like resolv.conf (its host path does not show in the sandbox's mountinfo).
    proxyTrustBundle: async () => (await proxyCa()).bundle,
    // (contree_run_stage_duration_seconds{stage="prepare|start|run|commit|teardown"}, docs/metrics.md)
    limits: {
      memoryBytes: config.sandbox.memoryBytes,
      pids: config.sandbox.pids,
      ...(config.sandbox.cpus === undefined ? {} : { cpuQuota: config.sandbox.cpus }),
    },
  });
  const events = new EventLog(store);
  const queue = new OperationQueue({
    store,
    events,
    logger,
    handlers: [timed(imports), timed(instanceHandler)],
    relieveStorage: () => disk.relieve(),
    limitsOf: async (projectId) => {
      const p = await store.projects.findById(projectId);
      return p ? effectiveLimits(config.defaultLimits, p) : config.defaultLimits;
    },
  });
  // Before recovery: operations it fails are counted like any other.
  events.observe((id, e) => serverMetrics.operationEvent(id, e));
  // A new image grows its project's usage figure now, not at the next pass (the quota sees it).
  events.observe((id, e) => {
    const image = e.type === "completion" ? e.data["result_image_uuid"] : undefined;
    if (typeof image === "string")
      void usage.imageAdded(image, id).catch((err) => logger.warn({ err }, "storage usage update failed"));
  });
  const failed = await queue.recover();
  if (failed > 0) logger.warn({ failed }, "operations interrupted by a restart were marked FAILED");
  await imports.sweepCredentials();

  const gate = new HeavyGate(config.heavyRequests);
  const inspect = new InspectService();
  const app = await buildApp(
    {
      config,
      logger,
      metrics,
      auth: { authenticate: (header, project) => authenticate(store, header, project) },
      storage: disk,
      files: new FileService(store, content, config.maxUploadBytes),
      images,
      imports: { start: (project, body, maxTimeout) => imports.start(queue, project, body, maxTimeout) },
      instances: new InstanceService(
        config,
        store,
        images,
        queue,
        config.defaultNetworking,
        outputs,
        assertQuota,
        secrets,
      ),
      live,
      operations: {
        get: (id, projectId) => store.operations.get(id, projectId),
        list: (projectId, filter) => store.operations.list(projectId, filter),
        stats: (projectId) => operationStats(store.db, projectId),
        cancel: (projectId, id) => queue.cancel(projectId, id),
      },
      events,
      inspect,
      snapshots,
      outputs,
      gate,
      mcp: createMcpHttpEndpoint(),
      secrets: {
        set: async (project, name, value, policy) => {
          const p = await store.projects.resolve(project);
          const created = await secrets.set(p.id, name, value, policy);
          const info = (await secrets.list(p.id)).find((x) => x.name === name);
          if (!info) throw internal("a stored secret is not listed");
          return { created, info };
        },
        list: async (project) => secrets.list((await store.projects.resolve(project)).id),
        delete: async (project, name) => secrets.delete((await store.projects.resolve(project)).id, name),
      },
      ports: {
        signer: loadPortUrlSigner(config.dataDir, config.ports.urlKey),
        maxConnectionsPerInstance: config.ports.maxConnectionsPerInstance,
      },
      usage: {
        view: async (project) =>
          usageView(
            usage.latest() ?? (await usage.refresh()),
            await store.projects.list(),
            config.defaultLimits,
            project,
          ),
      },
      admin: accessAdmin(store),
    },
    V1_ROUTES,
  );
  // The terminal channel's WebSocket upgrades (api/terminal-socket.ts), on the one upgrade router.
  const terminals = terminalUpgrade({
    config,
    logger,
    live,
    auth: { authenticate: (header, project) => authenticate(store, header, project) },
    operations: { get: (id, projectId) => store.operations.get(id, projectId) },
  });
  app.upgrades.register(
    (pathname) => (terminalTarget(pathname, `${config.pathPrefix}/v1`) === null ? null : {}),
    async (req, socket, head) => terminals.upgrade(req, socket, head),
  );
  queue.start();
  // After recovery: operations a crash left are terminal now, so their inputs are not held.
  const retention = new Retention(store, config.defaultLimits);
  const gc = new GarbageCollector({
    store,
    layers,
    content,
    runsDir: layout.runs,
    graceMs: config.gc.graceSeconds * 1000,
    logger,
    // Retention first: what expires now is collected in the same pass.
    beforeMark: async (now) => ({
      imagesExpired: await retention.expireImages(now),
      filesExpired: await retention.expireFiles(now),
    }),
    onReport: gcObserved,
  });
  earlyGc.add(() => gc.requestEarly());
  gc.start(config.gc.intervalSeconds);
  usage.start();
  let closed = false;
  return {
    app,
    runtime: {
      name: driver.name,
      kind: driver.kind,
      isolation: driver.isolation,
      why: explainSelection(report, driver.name),
    },
    scratch: { backend: scratch.backend.name, enforced: scratch.backend.enforced, reason: scratch.reason },
    store,
    logger,
    heavy: gate,
    gc,
    usage,
    gcObserved,
    ...(boot.createdToken ? { bootstrapToken: boot.createdToken } : {}),
    async close() {
      if (closed) return;
      closed = true;
      // Terminal clients are told the server is going away (1001), before their runs are cancelled.
      terminals.close();
      await gc.close();
      await queue.close();
      disk.close();
      usage.close();
      processMetrics.close();
      await app.close();
      // After the app: an inspect stream still open reads through a view until then.
      await snapshots.close();
      leases.close();
      await inspect.close();
      await store.close();
    },
  };
}
