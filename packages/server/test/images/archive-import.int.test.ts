/**
 * Local archives: scripts/make-busybox-image.sh → `contree-server images import-archive` (the real
 * CLI process from sources) → the image listed with its tag, also while a server runs on the same
 * data dir; plus importArchive() on every fixture archive format.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importArchive } from "../../src/images/archive-import.js";
import { openMetadata } from "../../src/main.js";
import type { MetadataStore } from "../../src/metadata/metadata-store.js";
import type { Project } from "../../src/metadata/repos/project-repo.js";
import { LayerStore } from "../../src/snapshots/layer-store.js";
import { cleanEnv, cliCommand, REPO_ROOT } from "../harness/daemon.js";
import { type Fixtures, fixtures } from "../harness/fixtures.js";
import { startTestServer } from "../harness/in-process.js";

const run = promisify(execFile);
const SCRIPT = join(REPO_ROOT, "scripts", "make-busybox-image.sh");

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliResult> {
  const { cmd, argv } = cliCommand(args);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    p.once("error", reject);
    p.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const UUID_LINE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$/;

let work: string;
let busyboxTar: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "contree-archive-test-"));
  busyboxTar = join(work, "busybox.tar");
  await run("bash", [SCRIPT, busyboxTar], { timeout: 120_000 });
}, 180_000);
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("scripts/make-busybox-image.sh", () => {
  it("writes an OCI layout with a Docker 25 manifest.json and a root-owned busybox rootfs", async () => {
    const { stdout: members } = await run("tar", ["-tf", busyboxTar]);
    expect(members.split("\n")).toEqual(
      expect.arrayContaining(["oci-layout", "index.json", "manifest.json"]),
    );
    const { stdout: manifestJson } = await run("tar", ["-xOf", busyboxTar, "manifest.json"]);
    const [entry] = JSON.parse(manifestJson) as Array<{ RepoTags: string[]; Layers: string[] }>;
    expect(entry?.RepoTags).toEqual(["busybox:latest"]);
    expect(entry?.Layers).toHaveLength(1);
    const { stdout: listing } = await run(
      "bash",
      ["-c", 'tar -xOf "$1" "$2" | tar -tvzf - --numeric-owner', "_", busyboxTar, entry?.Layers[0] ?? ""],
      {
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const line = (name: string) =>
      listing
        .split("\n")
        .find((l) => l.endsWith(` ${name}`) || l.endsWith(` ${name}/`) || l.includes(` ${name} -> `)) ?? "";
    expect(line("bin/busybox")).toMatch(/^-rwxr-xr-x 0\/0 /);
    expect(line("bin/sh")).toMatch(/^lrwxrwxrwx 0\/0 .* bin\/sh -> \/bin\/busybox$/);
    expect(line("tmp")).toMatch(/^drwxrwxrwt 0\/0 /);
    expect(line("root")).toMatch(/^drwx------ 0\/0 /);
    for (const d of ["proc", "sys", "dev", "etc/passwd", "etc/group"]) expect(line(d), d).not.toBe("");
    // Every member is owned by root, whoever ran the script.
    expect(
      listing
        .trim()
        .split("\n")
        .filter((l) => !/^\S+ 0\/0 /.test(l)),
    ).toEqual([]);
  });
});

describe("contree-server images import-archive", () => {
  it("imports the busybox archive into a fresh data dir, lists it, and reuses layers on reimport", async () => {
    const dataDir = join(work, "data-fresh");
    const first = await cli([
      "images",
      "import-archive",
      busyboxTar,
      "--tag",
      "busybox:latest",
      "--data-dir",
      dataDir,
    ]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(UUID_LINE);
    expect(first.stderr).toMatch(/1 layer, 0 reused/);
    const id = first.stdout.trim();

    const list = await cli(["images", "list", "--data-dir", dataDir]);
    expect(list.code, list.stderr).toBe(0);
    const row = list.stdout.split("\n").find((l) => l.startsWith(id));
    expect(row?.split("\t")[1]).toBe("busybox:latest");

    const layersBefore = await readdir(join(dataDir, "layers"));
    expect(layersBefore).toHaveLength(1);
    const again = await cli([
      "images",
      "import-archive",
      busyboxTar,
      "--tag",
      "busybox:again",
      "--data-dir",
      dataDir,
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/1 layer, 1 reused/);
    expect(await readdir(join(dataDir, "layers"))).toEqual(layersBefore);
    expect(await readdir(join(dataDir, "staging"))).toEqual([]);
  }, 120_000);

  it("works while the server runs on the same data dir; the API sees the image", async () => {
    const t = await startTestServer();
    try {
      const r = await cli([
        "images",
        "import-archive",
        busyboxTar,
        "--tag",
        "offline/busybox:1",
        "--data-dir",
        t.dataDir,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const id = r.stdout.trim();
      const list = (await (await t.api("/v1/images?tag=offline/busybox:1")).json()) as {
        images: Array<{ uuid: string; tag: string }>;
      };
      expect(list.images[0]).toMatchObject({ uuid: id, tag: "offline/busybox:1" });
      const byId = await t.api(`/v1/images?uuid=${id}`);
      expect(((await byId.json()) as { images: unknown[] }).images).toHaveLength(1);
    } finally {
      await t.close();
    }
  }, 120_000);

  it("fails clearly on a missing file, a non-archive, a tar that is no image, a bad tag and an unknown project", async () => {
    // One data dir each: several CLIs creating the same fresh database at once is not what is tested here.
    let n = 0;
    const dir = () => join(work, `data-errors-${++n}`);
    const junk = join(work, "junk.bin");
    await writeFile(junk, Buffer.alloc(8192, 0x41));
    const plain = join(work, "plain.tar");
    await run("tar", ["-cf", plain, "-C", "/etc", "hostname", "passwd"]);
    const [missing, notTar, noImage, badTag, noProject] = await Promise.all([
      cli(["images", "import-archive", join(work, "nope.tar"), "--tag", "x", "--data-dir", dir()]),
      cli(["images", "import-archive", junk, "--tag", "x", "--data-dir", dir()]),
      cli(["images", "import-archive", plain, "--tag", "x", "--data-dir", dir()]),
      cli(["images", "import-archive", busyboxTar, "--tag", "bad tag!", "--data-dir", dir()]),
      cli([
        "images",
        "import-archive",
        busyboxTar,
        "--tag",
        "x",
        "--project",
        "no-such-project",
        "--data-dir",
        dir(),
      ]),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/archive .*nope\.tar not found/);
    expect(notTar.code).toBe(2);
    expect(notTar.stderr).toMatch(/not a valid image archive/);
    expect(noImage.code).toBe(2);
    expect(noImage.stderr).toMatch(/not a valid image archive: no index\.json .* or manifest\.json/);
    expect(badTag.code).toBe(2);
    expect(badTag.stderr).toMatch(/invalid tag/);
    expect(noProject.code).toBe(1);
    expect(noProject.stderr).toMatch(/project "no-such-project" not found/);
    for (const r of [missing, notTar, noImage, badTag, noProject]) expect(r.stdout).toBe("");
    // Listing a data dir that was never used says so and does not create one.
    const empty = join(work, "never-used");
    const list = await cli(["images", "list", "--data-dir", empty]);
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/no contree data in/);
    await expect(readdir(empty)).rejects.toThrow(/ENOENT/);
  }, 120_000);
});

describe("importArchive", () => {
  let fx: Fixtures;
  let dataDir: string;
  let store: MetadataStore;
  let layers: LayerStore;
  let project: Project;

  beforeAll(async () => {
    fx = await fixtures();
    dataDir = await mkdtemp(join(tmpdir(), "contree-archive-import-"));
    store = openMetadata(dataDir);
    layers = await LayerStore.open(dataDir);
    project = await store.projects.create("default");
  });
  afterAll(async () => {
    await store?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("reads docker save, Docker 25 and OCI archives; the same content shares its layers", async () => {
    const results = [];
    for (const [path, tag] of [
      [fx.archives.busyboxDocker, "bb-docker"],
      [fx.archives.busyboxDocker25, "bb-docker25"],
      [fx.archives.busyboxOci, "bb-oci"],
      [fx.archives.featuresDocker, "features-docker"],
      [fx.archives.featuresOci, "features-oci"],
    ] as const) {
      results.push(await importArchive({ store, layers, project, path, tag }));
    }
    expect(results.map((r) => r.format)).toEqual(["docker", "oci", "oci", "docker", "oci"]);
    expect(results.map((r) => r.reusedLayers)).toEqual([0, 1, 1, 1, 3]);
    expect(results[0]?.image.mountChain).toEqual(results[2]?.image.mountChain);
    expect(results[3]?.image.mountChain).toEqual(results[4]?.image.mountChain);
    expect(await readdir(join(dataDir, "layers"))).toHaveLength(3);
    for (const [i, tag] of [
      "bb-docker",
      "bb-docker25",
      "bb-oci",
      "features-docker",
      "features-oci",
    ].entries()) {
      expect(await store.images.imageIdByTag(project.id, tag)).toBe(results[i]?.image.id);
    }
  });

  it("picks an image of an archive by name and rejects an unknown one", async () => {
    const r = await importArchive({
      store,
      layers,
      project,
      path: fx.archives.busyboxDocker,
      tag: null,
      image: "fixtures/busybox:latest",
    });
    expect(r.layers).toBe(1);
    await expect(
      importArchive({ store, layers, project, path: fx.archives.busyboxDocker, tag: null, image: "nope:1" }),
    ).rejects.toThrow(/not found in the archive/);
  });

  it("an import aborted between layers leaves no image row and nothing staged", async () => {
    const fresh = await mkdtemp(join(tmpdir(), "contree-archive-abort-"));
    const s = openMetadata(fresh);
    try {
      const l = await LayerStore.open(fresh);
      const p = await s.projects.create("default");
      const abort = new AbortController();
      await expect(
        importArchive({
          store: s,
          layers: l,
          project: p,
          path: fx.archives.featuresOci,
          tag: "features",
          signal: abort.signal,
          progress: (e) => {
            if (e.layer === 1) abort.abort(new Error("stop"));
          },
        }),
      ).rejects.toThrow(/stop/);
      expect(await s.images.imageIdByTag(p.id, "features")).toBeUndefined();
      expect(await s.images.list(p.id, "", { limit: 10, offset: 0 })).toEqual([]);
      expect(await readdir(join(fresh, "staging"))).toEqual([]);
      // Nothing of a failed import stays: layers are published only once all are in place.
      expect(await readdir(join(fresh, "layers"))).toEqual([]);
      expect(await s.images.allLayerIds()).toEqual([]);
      const again = await importArchive({
        store: s,
        layers: l,
        project: p,
        path: fx.archives.featuresOci,
        tag: "features",
      });
      expect(again.reusedLayers).toBe(0);
    } finally {
      await s.close();
      await rm(fresh, { recursive: true, force: true });
    }
  });
});
