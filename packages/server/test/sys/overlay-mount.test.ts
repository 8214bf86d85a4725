import { existsSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mountsUnder } from "../../src/runtime/reclaim.js";
import { diffStats } from "../../src/snapshots/overlay/diff-stats.js";
import { type Mounter, mounter } from "../../src/sys/mount.js";
import { mountRootfs, unmount as unmountWith } from "../../src/sys/overlay-mount.js";
import { runCommand } from "../../src/sys/run-command.js";

let root = "";
const mounted: string[] = [];
// Both backends must behave alike: syscalls through the native addon, and util-linux's CLI.
let m: Mounter = mounter("native");
const unmount = (target: string) => unmountWith(target, m);

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "rootfs-test-"));
});

afterEach(async () => {
  for (const m of mounted.splice(0).reverse()) await unmount(m).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

/** Layers named like the store names them (~40 chars), each adding f<i> and rewriting common.txt. */
async function makeLayers(n: number, dir = path.join(root, "layers")): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const l = path.join(dir, `layer-${String(i).padStart(4, "0")}-${"a".repeat(29)}`);
    await mkdir(l, { recursive: true });
    await writeFile(path.join(l, `f${i}`), String(i));
    await writeFile(path.join(l, "common.txt"), `layer ${i}`);
    out.push(l);
  }
  return out.reverse(); // top-most first
}

async function mountRun(lowers: string[], name = "run") {
  const run = path.join(root, name);
  const o = {
    lowers,
    upper: path.join(run, "upper"),
    work: path.join(run, "work"),
    target: path.join(run, "merged"),
  };
  await mountRootfs(o, m);
  mounted.push(o.target);
  return o;
}

describe.each(["native", "cli"] as const)("mountRootfs (%s)", (backend) => {
  beforeEach(() => {
    m = mounter(backend);
  });

  it("names no host path in the mount's options (what a sandbox reads in /proc/mounts)", async () => {
    const lowers = await makeLayers(30);
    const o = await mountRun(lowers);
    const line = (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .find((l) => l.split(" ")[4] === o.target);
    expect(line).toBeDefined();
    const options = (line as string).split(" - ")[1] as string;
    expect(options).toMatch(/lowerdir/);
    expect(options).not.toContain(root);
    expect(options).not.toContain("layer-");
    expect(options).not.toContain(tmpdir());
  });

  it("mounts a chain, lands writes in the upper, and unmounts", async () => {
    const lowers = await makeLayers(3);
    const o = await mountRun(lowers);
    expect(await readFile(path.join(o.target, "common.txt"), "utf8")).toBe("layer 2");
    expect((await readdir(o.target)).sort()).toEqual(["common.txt", "f0", "f1", "f2"]);
    expect((await diffStats(o.upper)).empty).toBe(true);
    await writeFile(path.join(o.target, "new.txt"), "12345");
    await rm(path.join(o.target, "f0"));
    await unmount(o.target);
    mounted.pop();
    expect(existsSync(path.join(o.target, "common.txt"))).toBe(false);
    const d = await diffStats(o.upper);
    expect(d).toEqual({ bytes: 5, entries: 2, devices: 0, empty: false });
    const wh = await stat(path.join(o.upper, "f0"));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
  });

  it("mounts nodev and nosuid: a device node in a layer does not open (short and aliased chains)", async () => {
    for (const [name, n] of [
      ["short", 2],
      ["long", 120],
    ] as const) {
      const lowers = await makeLayers(n, path.join(root, `layers-${name}`));
      const node = path.join(lowers[0]!, "null-dev");
      const made = await runCommand("mknod", ["-m", "666", node, "c", "1", "3"]);
      expect(made.code).toBe(0);
      const o = await mountRun(lowers, `run-${name}`);
      const line = (await readFile("/proc/self/mountinfo", "utf8"))
        .split("\n")
        .find((l) => l.split(" ")[4] === o.target);
      expect(line?.split(" ")[5]?.split(",")).toEqual(expect.arrayContaining(["nodev", "nosuid"]));
      const err = await open(path.join(o.target, "null-dev"), "r").then(
        async (fh) => {
          await fh.close();
          return "opened";
        },
        (e: NodeJS.ErrnoException) => e.code,
      );
      expect(err).toBe("EACCES");
    }
  });

  it("mounts 90 side-by-side layers with relative names", async () => {
    const lowers = await makeLayers(90);
    const o = await mountRun(lowers);
    expect(await readFile(path.join(o.target, "common.txt"), "utf8")).toBe("layer 89");
    expect(await readFile(path.join(o.target, "f0"), "utf8")).toBe("0");
  });

  it("mounts chains past the 4 KiB option limit (CLI: through a symlink alias dir), and cleans up", async () => {
    const lowers = await makeLayers(300);
    const o = await mountRun(lowers);
    expect(await readFile(path.join(o.target, "common.txt"), "utf8")).toBe("layer 299");
    expect(await readFile(path.join(o.target, "f0"), "utf8")).toBe("0");
    expect((await readdir(root)).filter((n) => n.startsWith(".lowers-"))).toEqual([]);
    expect((await readdir(path.join(root, "run"))).filter((n) => n.startsWith(".lowers-"))).toEqual([]);
  });

  it("handles lowers in different directories", async () => {
    const a = await makeLayers(1, path.join(root, "a"));
    const b = await makeLayers(2, path.join(root, "b"));
    const o = await mountRun([...a, ...b]);
    expect(await readFile(path.join(o.target, "common.txt"), "utf8")).toBe("layer 0");
    expect((await readdir(o.target)).sort()).toEqual(["common.txt", "f0", "f1"]);
  });

  it("mounts read-only views of one or many layers", async () => {
    const lowers = await makeLayers(2);
    for (const ls of [lowers, lowers.slice(1)]) {
      const target = path.join(root, `ro-${ls.length}`);
      await mountRootfs({ lowers: ls, target, readOnly: true }, m);
      mounted.push(target);
      await expect(writeFile(path.join(target, "x"), "x")).rejects.toMatchObject({ code: "EROFS" });
      expect(existsSync(path.join(target, "f0"))).toBe(true);
    }
  });

  it("refuses relative paths and option separators", async () => {
    const [l] = await makeLayers(1);
    const target = path.join(root, "m");
    await expect(mountRootfs({ lowers: ["rel"], target, readOnly: true }, m)).rejects.toMatchObject({
      code: "EINVAL",
    });
    await expect(
      mountRootfs({ lowers: [`${l}`, "/x,upperdir=/"], target, readOnly: true }, m),
    ).rejects.toMatchObject({
      code: "EINVAL",
    });
    await expect(mountRootfs({ lowers: [], target, readOnly: true }, m)).rejects.toMatchObject({
      code: "EINVAL",
    });
  });

  it("unmount of something not mounted is a no-op", async () => {
    await mkdir(path.join(root, "nothing"));
    await unmount(path.join(root, "nothing"));
  });

  it("lists mounts under a root, deepest first", async () => {
    const lowers = await makeLayers(1);
    const o = await mountRun(lowers);
    expect(mountsUnder([root])).toEqual([o.target]);
  });
});
