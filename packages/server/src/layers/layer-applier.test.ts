import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getAttributeSync } from "@napi-rs/xattr";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
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
});
