/** Both mount backends (syscalls via the native addon, util-linux's CLI) behave the same. */
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mountsUnder } from "../../src/runtime/reclaim.js";
import { mounter } from "../../src/sys/mount.js";

let root = "";

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "sys-mount-"));
});

afterEach(async () => {
  const m = mounter();
  for (const t of mountsUnder([root])) await m.umount(t, { lazy: true }).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe.each(["native", "cli"] as const)("mounter (%s)", (backend) => {
  const m = mounter(backend);

  it("reports which backend it is", () => {
    expect(m.backend).toBe(backend);
  });

  it("mounts a size-capped tmpfs: writes past the cap fail with ENOSPC", async () => {
    const t = path.join(root, "scratch");
    await mkdir(t);
    await m.tmpfs(t, "size=65536,mode=0700");
    expect(mountsUnder([root])).toEqual([t]);
    await writeFile(path.join(t, "small"), Buffer.alloc(16 * 1024));
    await expect(writeFile(path.join(t, "big"), Buffer.alloc(128 * 1024))).rejects.toMatchObject({
      code: "ENOSPC",
    });
    await m.umount(t);
    expect(mountsUnder([root])).toEqual([]);
  });

  it("names unmount failures by errno: not mounted, missing, busy; lazy detaches a busy mount", async () => {
    const t = path.join(root, "t");
    await mkdir(t);
    await expect(m.umount(t)).rejects.toMatchObject({ code: "EINVAL" });
    await expect(m.umount(path.join(root, "missing"))).rejects.toMatchObject({ code: "ENOENT" });
    await m.tmpfs(t, "size=65536");
    await writeFile(path.join(t, "f"), "x");
    const fh = await open(path.join(t, "f"), "r");
    try {
      await expect(m.umount(t)).rejects.toMatchObject({ code: "EBUSY" });
      await m.umount(t, { lazy: true });
      expect(mountsUnder([root])).toEqual([]);
      expect(await fh.readFile("utf8")).toBe("x");
    } finally {
      await fh.close();
    }
  });

  it("read-only bind mounts refuse writes and show the source", async () => {
    const src = path.join(root, "src");
    const t = path.join(root, "ro");
    await mkdir(src);
    await mkdir(t);
    await writeFile(path.join(src, "a"), "A");
    await m.bindReadOnly(src, t);
    expect(await readFile(path.join(t, "a"), "utf8")).toBe("A");
    await expect(writeFile(path.join(t, "b"), "B")).rejects.toMatchObject({ code: "EROFS" });
    await m.umount(t);
  });

  it("fails an overlay over a missing lower without leaving a mount", async () => {
    const t = path.join(root, "ov");
    await mkdir(t);
    await expect(
      m.overlay(t, { lowers: [path.join(root, "nope"), path.join(root, "nope2")], options: [] }),
    ).rejects.toBeInstanceOf(Error);
    expect(mountsUnder([root])).toEqual([]);
  });
});

describe("mounter (native) past the legacy option limit", () => {
  it("mounts 200 scattered lowers with long absolute paths (no 4 KiB option string)", async () => {
    const m = mounter("native");
    const lowers: string[] = [];
    for (let i = 0; i < 200; i++) {
      const l = path.join(root, `dir-${i % 7}`, `layer-${String(i).padStart(3, "0")}-${"x".repeat(60)}`);
      await mkdir(l, { recursive: true });
      await writeFile(path.join(l, "top"), String(i));
      await writeFile(path.join(l, `f${i}`), "");
      lowers.push(l);
    }
    expect(lowers.join(":").length).toBeGreaterThan(4096 * 4);
    const t = path.join(root, "merged");
    const upper = path.join(root, "upper");
    const work = path.join(root, "work");
    await Promise.all([mkdir(t), mkdir(upper), mkdir(work)]);
    await m.overlay(t, { lowers, upper, work, options: ["index=off", "redirect_dir=off", "metacopy=off"] });
    expect(await readFile(path.join(t, "top"), "utf8")).toBe("0");
    await writeFile(path.join(t, "f199"), "changed");
    await m.umount(t);
    expect(await readFile(path.join(upper, "f199"), "utf8")).toBe("changed");
  });
});
