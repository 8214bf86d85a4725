/**
 * The overlay snapshotter against the conformance suite, with real mounts and real SQLite: once
 * with a size-capped tmpfs scratch (the cap enforced while writing, commit by copy) and once with
 * plain dirs on the data filesystem (commit by rename, the cap checked after the run).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { LocalContentStore } from "../../src/content/local/local-content-store.js";
import { newId } from "../../src/core/ids.js";
import { FileService } from "../../src/files/file-service.js";
import { openMetadata } from "../../src/main.js";
import type { ImageRecord } from "../../src/metadata/repos/image-repo.js";
import { createLogger } from "../../src/observability/logger.js";
import { LayerStore } from "../../src/snapshots/layer-store.js";
import { LeaseManager } from "../../src/snapshots/leases.js";
import { OverlaySnapshotter } from "../../src/snapshots/overlay/overlay-snapshotter.js";
import { PlainScratch } from "../../src/snapshots/overlay/scratch/plain-scratch.js";
import type { ScratchBackend } from "../../src/snapshots/overlay/scratch/scratch.js";
import { TmpfsScratch } from "../../src/snapshots/overlay/scratch/tmpfs-scratch.js";
import { type SnapshotterFixture, snapshotterConformance, WHITEOUT } from "../../src/snapshots/testsuite.js";
import { mounter } from "../../src/sys/mount.js";
import { runCommand } from "../../src/sys/run-command.js";

const logger = createLogger("silent");
const MAX_CHAIN = 4;
/** Far above any range the runtime hands out (no process runs in it: it only shifts owners). */
const TEST_RANGE = { hostId: 2_000_000_000, size: 65_536 };

async function mountsBelow(dir: string): Promise<string[]> {
  return (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(`${dir}/`));
}

function fixture(scratch: () => ScratchBackend): () => Promise<SnapshotterFixture> {
  return async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "contree-snapshots-"));
    const runsDir = join(dataDir, "runs");
    await mkdir(runsDir);
    const store = openMetadata(dataDir);
    const layers = await LayerStore.open(dataDir);
    const content = await LocalContentStore.open(join(dataDir, "content"));
    const leases = new LeaseManager(store);
    const project = await store.projects.create(`p-${newId().slice(0, 8)}`);
    const faults: SnapshotterFixture["faults"] = { hook: undefined };
    const snapshots = new OverlaySnapshotter({
      store,
      layers,
      content,
      leases,
      scratch: scratch(),
      runsDir,
      logger,
      maxChain: MAX_CHAIN,
      faults: (step, id) => faults.hook?.(step, id),
    });
    let layerNo = 0;
    return {
      snapshots,
      store,
      projectId: project.id,
      faults,
      maxChain: MAX_CHAIN,
      users: mounter().idmapsLayers ? TEST_RANGE : null,
      upload: async (text) =>
        (
          await new FileService(store, content, 1 << 20).upload(
            project.id,
            Readable.from([Buffer.from(text)]),
          )
        ).id,
      capEnforced: snapshots.scratchEnforced,
      idle: () => snapshots.idle(),
      async baseImage(tree: Record<string, string>, below?: ImageRecord): Promise<ImageRecord> {
        const id = `i${process.pid}t${++layerNo}${newId().replace(/-/g, "").slice(0, 8)}`;
        const dir = layers.path(id);
        await mkdir(dir);
        for (const [p, text] of Object.entries(tree)) {
          const host = join(dir, p);
          if (p.endsWith("/")) {
            await mkdir(host, { recursive: true });
            continue;
          }
          await mkdir(dirname(host), { recursive: true });
          if (text === WHITEOUT) {
            const r = await runCommand("mknod", [host, "c", "0", "0"]);
            if (r.code !== 0) throw new Error(`mknod: ${r.stderr}`);
          } else await writeFile(host, text);
        }
        const img: ImageRecord = {
          id: newId(),
          projectId: project.id,
          parentId: below?.id ?? null,
          layerId: id,
          mountChain: [id, ...(below?.mountChain ?? [])],
          depth: below === undefined ? 0 : below.depth + 1,
          env: null,
          operationId: null,
          size: 0,
          source: null,
          createdAt: Date.now(),
        };
        await store.transaction(async (tx) => {
          await tx.images.insertLayer({
            id,
            kind: "import",
            chainId: null,
            size: 0,
            entries: 0,
            createdAt: 0,
          });
          await tx.images.insert(img);
        });
        return img;
      },
      layerDirs: () => readdir(layers.layersDir),
      staged: () => readdir(layers.stagingDir),
      runDirs: async () => (await readdir(runsDir)).filter((n) => !n.startsWith(".")),
      mountsLeft: () => mountsBelow(dataDir),
      async cleanup() {
        await snapshots.close();
        leases.close();
        for (const m of (await mountsBelow(dataDir)).reverse())
          await runCommand("umount", ["-l", m]).catch(() => undefined);
        await store.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  };
}

snapshotterConformance(
  "overlay, tmpfs scratch (copy)",
  fixture(() => new TmpfsScratch(logger)),
);
snapshotterConformance(
  "overlay, plain scratch (rename)",
  fixture(() => new PlainScratch()),
);
