import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { text } from "node:stream/consumers";
import { setAttributeSync } from "@napi-rs/xattr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAppError } from "../core/errors.js";
import { MergedView } from "./merged-view.js";

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return isAppError(err) ? err.kind : `non-AppError: ${String(err)}`;
  }
}

// Three hand-made layers in overlay upper format (top-most last here, first in the view).
describe("merged view", () => {
  let dir: string;
  let view: MergedView;
  const put = (layer: string, rel: string, content = ""): void => {
    const p = path.join(dir, layer, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  };
  const link = (layer: string, rel: string, target: string): void => {
    const p = path.join(dir, layer, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.symlinkSync(target, p);
  };
  const whiteout = (layer: string, rel: string): void => {
    const p = path.join(dir, layer, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    execFileSync("mknod", [p, "c", "0", "0"]);
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "contree-mergedview-"));
    put("l1", "etc/passwd", "image passwd\n");
    put("l1", "etc/hosts", "hosts\n");
    put("l1", "usr/lib/libc.so", "libc");
    link("l1", "lib", "/usr/lib");
    put("l1", "opt/dir/a", "a");
    put("l1", "opt/dir/b", "b");
    link("l1", "up", "../../../../../etc");
    link("l1", "loop", "loop");
    link("l1", "ping", "pong");
    link("l1", "pong", "ping/x");
    put("l1", "data/x", "x");
    put("l1", "thing", "a file below a directory");
    put("l1", "gone/deep/file", "hidden");
    whiteout("l2", "etc/hosts");
    put("l2", "opt/dir/c", "c");
    setAttributeSync(path.join(dir, "l2/opt/dir"), "trusted.overlay.opaque", "y");
    put("l2", "data/y", "y");
    put("l2", "thing/inner", "inner");
    whiteout("l2", "gone");
    put("l3", "etc/added", "added");
    link("l3", "escape", "/../../etc/passwd");
    link("l3", "dangling", "/nowhere");
    put("l3", "new", "new");
    setAttributeSync(path.join(dir, "l3/new"), "user.note", Buffer.from([0xff, 0x00, 0x01]));
    view = new MergedView(["l3", "l2", "l1"].map((l) => path.join(dir, l)));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("merges directories, honouring whiteouts and opaque directories", async () => {
    expect(await view.readdir("/")).toEqual([
      "dangling",
      "data",
      "escape",
      "etc",
      "lib",
      "loop",
      "new",
      "opt",
      "ping",
      "pong",
      "thing",
      "up",
      "usr",
    ]);
    expect(await view.readdir("/etc")).toEqual(["added", "passwd"]);
    expect(await view.readdir("/opt/dir")).toEqual(["c"]);
    expect(await view.readdir("/data")).toEqual(["x", "y"]);
    expect(await view.readdir("/thing")).toEqual(["inner"]);
    expect(await kindOf(view.lstat("/etc/hosts"))).toBe("not_found");
    expect(await kindOf(view.lstat("/gone/deep/file"))).toBe("not_found");
    expect(await kindOf(view.lstat("/opt/dir/a"))).toBe("not_found");
  });

  it("follows symlinks inside the image only", async () => {
    expect(await view.realpath("/lib/libc.so")).toBe("/usr/lib/libc.so");
    expect((await view.stat("/lib/libc.so")).path).toBe("/usr/lib/libc.so");
    expect(await view.realpath("/up/passwd")).toBe("/etc/passwd");
    const { stream, size } = await view.openRead("/escape");
    expect(size).toBe(13);
    expect(await text(stream)).toBe("image passwd\n");
    expect(await text((await view.openRead("/../../../etc/passwd")).stream)).toBe("image passwd\n");
    expect(await text((await view.openRead("up/../up/passwd")).stream)).toBe("image passwd\n");
    expect((await view.lstat("/escape")).type).toBe("symlink");
    expect(await view.readlink("/escape")).toBe("/../../etc/passwd");
    expect(await kindOf(view.stat("/dangling"))).toBe("not_found");
    expect(await kindOf(view.stat("/loop"))).toBe("invalid_argument");
    expect(await kindOf(view.stat("/ping"))).toBe("invalid_argument");
  });

  it("normalises paths and clamps '..' at the root", async () => {
    expect(MergedView.normalize("../../a/./b//c/..")).toBe("/a/b");
    expect((await view.lstat("/../../..")).path).toBe("/");
    expect((await view.lstat("etc/../etc/./passwd")).path).toBe("/etc/passwd");
  });

  it("reports precise errors", async () => {
    expect(await kindOf(view.openRead("/etc"))).toBe("unprocessable");
    expect(await kindOf(view.readdir("/etc/passwd"))).toBe("unprocessable");
    expect(await kindOf(view.lstat("/etc/passwd/x"))).toBe("unprocessable");
    expect(await kindOf(view.lstat("/nope/x"))).toBe("not_found");
    expect(await kindOf(view.readlink("/etc/passwd"))).toBe("unprocessable");
    const err = await view.lstat("/nope").catch((e: Error) => e);
    expect((err as Error).message).not.toContain(dir);
  });

  it("reads ranges and xattrs (raw bytes, overlay's own hidden)", async () => {
    expect(await text((await view.openRead("/usr/lib/libc.so", { start: 1, end: 2 })).stream)).toBe("ib");
    expect((await view.xattrs("/new")).get("user.note")).toEqual(Buffer.from([0xff, 0x00, 0x01]));
    expect([...(await view.xattrs("/opt/dir")).keys()]).toEqual([]);
  });

  it("walks depth-first in sorted order without entering symlinks", async () => {
    const paths: string[] = [];
    for await (const st of view.walk("/")) paths.push(`${st.path}:${st.type}`);
    expect(paths).toEqual([
      "/:dir",
      "/dangling:symlink",
      "/data:dir",
      "/data/x:file",
      "/data/y:file",
      "/escape:symlink",
      "/etc:dir",
      "/etc/added:file",
      "/etc/passwd:file",
      "/lib:symlink",
      "/loop:symlink",
      "/new:file",
      "/opt:dir",
      "/opt/dir:dir",
      "/opt/dir/c:file",
      "/ping:symlink",
      "/pong:symlink",
      "/thing:dir",
      "/thing/inner:file",
      "/up:symlink",
      "/usr:dir",
      "/usr/lib:dir",
      "/usr/lib/libc.so:file",
    ]);
    const sub: string[] = [];
    for await (const st of view.walk("/opt")) sub.push(st.path);
    expect(sub).toEqual(["/opt", "/opt/dir", "/opt/dir/c"]);
  });
});
