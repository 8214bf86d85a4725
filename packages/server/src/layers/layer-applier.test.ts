import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getAttributeSync } from "@napi-rs/xattr";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
import { major, minor } from "./device.js";
import { DEVICE_XATTR, neutralizeDevices } from "./inert-device.js";
import { applyLayer } from "./layer-applier.js";
import { MergedView } from "./merged-view.js";
import { type TarWriterEntry, writeTar } from "./tar-writer.js";

type Spec = Partial<TarWriterEntry> & { name: string; data?: string };

function layer(specs: Spec[]): NodeJS.ReadableStream & AsyncIterable<Uint8Array> {
  return writeTar(
    specs.map((s) => ({
      type: s.type ?? (s.linkname !== undefined ? "symlink" : s.data !== undefined ? "file" : "dir"),
      mode: s.mode ?? (s.data !== undefined ? 0o644 : 0o755),
      uid: s.uid ?? 0,
      gid: s.gid ?? 0,
      mtime: s.mtime ?? 1_600_000_000,
      ...s,
      size: s.data !== undefined ? Buffer.byteLength(s.data) : 0,
      body: s.data !== undefined ? async () => [Buffer.from(s.data!)] : undefined,
    })),
  );
}

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return isAppError(err) ? err.kind : `non-AppError: ${String(err)}`;
  }
}

describe("applyLayer semantics", () => {
  let dir: string;
  let n = 0;
  const chain: string[] = [];
  const apply = async (specs: Spec[], signal?: AbortSignal) => {
    const dest = path.join(dir, `L${++n}`);
    fs.mkdirSync(dest);
    const r = await applyLayer(layer(specs), { dest, lowers: [...chain].reverse(), signal });
    chain.push(dest);
    return { dest, r };
  };
  const view = () => new MergedView([...chain].reverse());

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "contree-applier-"));
    n = 0;
    chain.length = 0;
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("copies up a parent directory that exists only below, with its attributes", async () => {
    await apply([{ name: "srv", mode: 0o2750, uid: 7, gid: 8, mtime: 1_500_000_000 }]);
    const { dest } = await apply([{ name: "srv/new", data: "n" }]);
    const st = fs.lstatSync(path.join(dest, "srv"));
    expect([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs]).toEqual([0o2750, 7, 8, 1_500_000_000_000]);
    expect(await view().readdir("/srv")).toEqual(["new"]);
  });

  it("copies up every missing level of a deep parent path", async () => {
    await apply([
      { name: "a", mode: 0o750, uid: 1 },
      { name: "a/b", mode: 0o711, uid: 2 },
      { name: "a/b/c", mode: 0o1777, uid: 3 },
      { name: "a/b/c/old", data: "o" },
    ]);
    const { dest } = await apply([
      { name: "a/b/c/new", data: "n" },
      { name: "a/b/.wh.gone", data: "" },
    ]);
    const attrs = ["a", "a/b", "a/b/c"].map((p) => {
      const st = fs.lstatSync(path.join(dest, p));
      return [st.mode & 0o7777, st.uid];
    });
    expect(attrs).toEqual([
      [0o750, 1],
      [0o711, 2],
      [0o1777, 3],
    ]);
    expect(await view().readdir("/a/b/c")).toEqual(["new", "old"]);
  });

  it("a whiteout after same-layer entries hides only the lower content", async () => {
    await apply([{ name: "a" }, { name: "a/old", data: "old" }]);
    const { dest } = await apply([
      { name: "a/new", data: "new" },
      { name: ".wh.a", data: "" },
    ]);
    expect(getAttributeSync(path.join(dest, "a"), "trusted.overlay.opaque")?.toString()).toBe("y");
    expect(await view().readdir("/a")).toEqual(["new"]);
  });

  it("a directory that replaces an earlier same-layer file does not resurrect the lower directory", async () => {
    await apply([{ name: "d" }, { name: "d/old", data: "old" }]);
    await apply([{ name: "d", data: "file" }, { name: "d" }, { name: "d/new", data: "new" }]);
    expect(await view().readdir("/d")).toEqual(["new"]);
  });

  it("hardlinks to a lower file copy it up, then link", async () => {
    await apply([{ name: "bin" }, { name: "bin/tool", data: "tool", mode: 0o4755 }]);
    const { dest } = await apply([{ name: "bin/alias", type: "hardlink", linkname: "bin/tool" }]);
    const a = fs.lstatSync(path.join(dest, "bin/alias"));
    const t = fs.lstatSync(path.join(dest, "bin/tool"));
    expect(a.ino).toBe(t.ino);
    expect(a.nlink).toBe(2);
    expect(a.mode & 0o7777).toBe(0o4755);
    expect(fs.readFileSync(path.join(dest, "bin/alias"), "utf8")).toBe("tool");
  });

  it("replaces a symlink in the final component instead of following it", async () => {
    await apply([
      { name: "etc" },
      { name: "etc/target", data: "keep" },
      { name: "link", linkname: "etc/target" },
    ]);
    const { dest } = await apply([{ name: "link", data: "mine" }]);
    expect(fs.lstatSync(path.join(dest, "link")).isFile()).toBe(true);
    expect(await (await view().openRead("/etc/target")).stream.toArray()).toEqual([Buffer.from("keep")]);
  });

  it("refuses a destination that is not empty", async () => {
    const dest = path.join(dir, "full");
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(dest, "x"), "");
    expect(await kindOf(applyLayer(layer([{ name: "a", data: "" }]), { dest, lowers: [] }))).toBe(
      "failed_precondition",
    );
  });

  it("stops between entries when aborted and releases the source", async () => {
    const ac = new AbortController();
    const specs: Spec[] = Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: "x" }));
    const src = layer(specs);
    const dest = path.join(dir, "aborted");
    fs.mkdirSync(dest);
    let seen = 0;
    async function* counting(): AsyncGenerator<Uint8Array> {
      for await (const c of src) {
        if (++seen === 3) ac.abort();
        yield c as Uint8Array;
      }
    }
    expect(await kindOf(applyLayer(counting(), { dest, lowers: [], signal: ac.signal }))).toBe("cancelled");
    expect(fs.readdirSync(dest).length).toBeLessThan(50);
  });

  it("drops overlay xattrs from the layer and keeps the others", async () => {
    const { dest, r } = await apply([
      {
        name: "f",
        data: "x",
        xattrs: new Map([
          ["trusted.overlay.redirect", Buffer.from("/etc")],
          ["user.keep", Buffer.from([0xde, 0xad])],
        ]),
      },
    ]);
    expect(r.droppedXattrs).toBe(1);
    expect(getAttributeSync(path.join(dest, "f"), "trusted.overlay.redirect")).toBeNull();
    expect(getAttributeSync(path.join(dest, "f"), "user.keep")).toEqual(Buffer.from([0xde, 0xad]));
  });

  describe("device nodes", () => {
    /** Every char/block node under a layer dir that is not a 0/0 whiteout. */
    const liveNodes = (root: string): string[] => {
      const out: string[] = [];
      const walk = (d: string): void => {
        for (const n of fs.readdirSync(d)) {
          const p = path.join(d, n);
          const st = fs.lstatSync(p);
          if (st.isDirectory()) walk(p);
          else if (st.isBlockDevice() || (st.isCharacterDevice() && st.rdev !== 0)) out.push(p);
        }
      };
      walk(root);
      return out;
    };
    const hostile: Spec[] = [
      { name: "probe/kmsg", type: "char", mode: 0o666, devmajor: 1, devminor: 11 },
      { name: "probe/hwrng", type: "char", mode: 0o666, devmajor: 10, devminor: 183 },
      { name: "probe/kvm", type: "char", mode: 0o666, devmajor: 10, devminor: 232 },
      { name: "probe/tun", type: "char", mode: 0o666, devmajor: 10, devminor: 200 },
      { name: "probe/vcs", type: "char", mode: 0o666, devmajor: 7, devminor: 0 },
      { name: "probe/mem", type: "char", mode: 0o666, devmajor: 1, devminor: 1 },
      { name: "probe/disk", type: "block", mode: 0o666, devmajor: 254, devminor: 0 },
      { name: "probe/big", type: "char", mode: 0o4640, uid: 3, gid: 4, devmajor: 4095, devminor: 1_000_000 },
    ];

    it("are never created live: each is an inert stand-in that the merged view reports as the device", async () => {
      const { dest } = await apply([
        { name: "probe" },
        ...hostile,
        { name: "probe/fifo", type: "fifo", mode: 0o600 },
      ]);
      expect(liveNodes(dest)).toEqual([]);
      const st = fs.lstatSync(path.join(dest, "probe/kmsg"));
      expect(st.isFile() && st.size === 0 && (st.mode & 0o7777) === 0).toBe(true);
      expect(fs.lstatSync(path.join(dest, "probe/fifo")).isFIFO()).toBe(true);
      const v = view();
      for (const e of hostile) {
        const got = await v.lstat(`/${e.name}`);
        expect(got).toMatchObject({ type: e.type, mode: e.mode, size: 0, uid: e.uid ?? 0, gid: e.gid ?? 0 });
        expect([major(got.rdev), minor(got.rdev)]).toEqual([e.devmajor, e.devminor]);
        expect(await kindOf(v.openRead(`/${e.name}`))).toBe("unprocessable");
      }
      // our own record never shows as an attribute of the entry
      expect([...(await v.xattrs("/probe/kmsg")).keys()]).toEqual([]);
    });

    it("a hardlink over a live node of an unconverted lower layer is refused; converted, it copies the stand-in", async () => {
      const { dest: lower } = await apply([{ name: "d" }, { name: "d/x", data: "x" }]);
      const made = await runMknod(path.join(lower, "d/kmsg"), "c", 1, 11);
      expect(made).toBe(0);
      const link: Spec[] = [{ name: "d/link", type: "hardlink", linkname: "d/kmsg" }];
      await expect(apply(link)).rejects.toThrow("live device node in a stored layer");
      // what the start-up conversion of an older data dir does to its layers
      expect(await neutralizeDevices(lower)).toBe(1);
      const { dest } = await apply(link);
      expect(liveNodes(dest)).toEqual([]);
      const got = await view().lstat("/d/link");
      expect(got.type).toBe("char");
      expect([major(got.rdev), minor(got.rdev)]).toEqual([1, 11]);
    });

    it("a layer cannot forge a device record on a regular file", async () => {
      const { dest, r } = await apply([
        { name: "fake", data: "", mode: 0, xattrs: new Map([[DEVICE_XATTR, Buffer.from("c 1 11 666")]]) },
      ]);
      expect(r.droppedXattrs).toBe(1);
      expect(getAttributeSync(path.join(dest, "fake"), DEVICE_XATTR)).toBeNull();
      expect((await view().lstat("/fake")).type).toBe("file");
    });

    it("neutralizeDevices replaces live nodes a sandbox made and keeps whiteouts", async () => {
      const upper = path.join(dir, "upper");
      fs.mkdirSync(path.join(upper, "a/b"), { recursive: true });
      expect(await runMknod(path.join(upper, "a/b/kmsg"), "c", 1, 11)).toBe(0);
      expect(await runMknod(path.join(upper, "disk"), "b", 254, 0)).toBe(0);
      expect(await runMknod(path.join(upper, "wh"), "c", 0, 0)).toBe(0);
      fs.symlinkSync("/dev/kmsg", path.join(upper, "link"));
      expect(await neutralizeDevices(upper)).toBe(2);
      expect(liveNodes(upper)).toEqual([]);
      expect(fs.lstatSync(path.join(upper, "wh")).isCharacterDevice()).toBe(true);
      expect(fs.lstatSync(path.join(upper, "link")).isSymbolicLink()).toBe(true);
      const got = await new MergedView([upper]).lstat("/a/b/kmsg");
      expect(got).toMatchObject({ type: "char", mode: 0o666 });
      expect((await new MergedView([upper]).lstat("/disk")).type).toBe("block");
    });
  });
});

function runMknod(p: string, t: "c" | "b", maj: number, min: number): Promise<number | null> {
  return new Promise((resolve) => {
    const c = spawn("mknod", ["-m", "666", p, t, String(maj), String(min)], { stdio: "ignore" });
    c.on("exit", (code) => resolve(code));
  });
}
