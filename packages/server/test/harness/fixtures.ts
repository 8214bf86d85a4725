/**
 * Fixture images, built once per machine state and cached in the temp dir under a hash of the
 * recipe (make-fixtures.sh + ocilib.sh + the busybox binary). The cache holds the OCI layout,
 * the archives, and a registry storage root with every image pushed, so a test registry is
 * seeded by copying that directory instead of pushing again:
 *
 *   const fx = await fixtures();
 *   const reg = await startRegistry({ seedFrom: fx.registryData });
 *   parseImageReference(`${reg.host}/${FIXTURE_IMAGES.busybox}`)
 *
 * Concurrent builders (vitest workers) each build in a private dir and rename it into place;
 * the loser throws its copy away.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startRegistry } from "./registry.js";

const execFileP = promisify(execFile);
const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");
const SCRIPT = join(FIXTURES_DIR, "make-fixtures.sh");

/** Repositories (with tag) pushed into the fixture registry. */
export const FIXTURE_IMAGES = {
  /** OCI index: linux/amd64 (+ linux/arm64/v8 with ARM64=1). */
  busybox: "fixtures/busybox:latest",
  /** Docker manifest list → v2s2 manifests, Docker layer media types. */
  busyboxDocker: "fixtures/busybox-docker:latest",
  /** A single Docker v2s2 manifest (no list). */
  busyboxV2s2: "fixtures/busybox-v2s2:latest",
  /** A single OCI manifest (no index). */
  busyboxOci: "fixtures/busybox-oci:latest",
  busyboxZstd: "fixtures/busybox-zstd:latest",
  busyboxUncompressed: "fixtures/busybox-uncompressed:latest",
  /** 3 layers: busybox, extras, feature layer with odd modes, devices, xattrs, whiteouts. */
  features: "fixtures/features:latest",
  /** busybox plus /probe/* : world-writable nodes of host devices (kmsg, hwrng, kvm, tun, vcs, mem, the root disk). */
  devices: "fixtures/devices:latest",
} as const;

export interface Fixtures {
  readonly dir: string;
  /** OCI layout with every image, tagged busybox, busybox-amd64, busybox-zstd, … */
  readonly layout: string;
  /** Registry storage root with FIXTURE_IMAGES pushed; pass as startRegistry({ seedFrom }). */
  readonly registryData: string;
  readonly archives: {
    readonly busyboxDocker: string;
    readonly busyboxOci: string;
    readonly busyboxDocker25: string;
    readonly featuresOci: string;
    readonly featuresDocker: string;
  };
}

let pending: Promise<Fixtures> | undefined;

export function fixtures(): Promise<Fixtures> {
  pending ??= build();
  return pending;
}

function describe(dir: string): Fixtures {
  return {
    dir,
    layout: join(dir, "oci", "fixtures"),
    registryData: join(dir, "registry-data"),
    archives: {
      busyboxDocker: join(dir, "archives", "busybox.docker.tar"),
      busyboxOci: join(dir, "archives", "busybox.oci.tar"),
      busyboxDocker25: join(dir, "archives", "busybox.docker25.tar"),
      featuresOci: join(dir, "archives", "features.oci.tar"),
      featuresDocker: join(dir, "archives", "features.docker.tar"),
    },
  };
}

function recipeHash(): string {
  const h = createHash("sha256");
  for (const f of [SCRIPT, join(FIXTURES_DIR, "ocilib.sh"), "/bin/busybox"]) h.update(readFileSync(f));
  h.update(`ARM64=${process.env["ARM64"] ?? ""} DEBIAN=${process.env["DEBIAN"] ?? ""}`);
  return h.digest("hex").slice(0, 16);
}

async function build(): Promise<Fixtures> {
  const final = join(tmpdir(), `contree-fixtures-${recipeHash()}`);
  if (existsSync(join(final, "complete"))) return describe(final);
  const work = await mkdtemp(join(tmpdir(), "contree-fixtures-build-"));
  try {
    const reg = await startRegistry({ storageDir: join(work, "registry-data") });
    try {
      await execFileP("bash", [SCRIPT, work, reg.host], { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
    } finally {
      await reg.stop();
    }
    rmSync(join(work, "rootfs"), { recursive: true, force: true });
    await execFileP("touch", [join(work, "complete")]);
    try {
      renameSync(work, final);
    } catch (err) {
      if (!existsSync(join(final, "complete"))) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return describe(final);
}
