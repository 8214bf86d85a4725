import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inertDeviceAt } from "../../src/layers/inert-device.js";
import { MergedView } from "../../src/layers/merged-view.js";
import {
  applyChain,
  readManifest,
  script,
  snapshot,
  standInsAsDevices,
  tempDir,
  withOverlay,
} from "./helpers.js";

// The 3-layer "features" image (busybox, extras, feat: owners, setuid/setgid/sticky, hardlinks,
// devices, fifo, capability and user xattrs, long and UTF-8 names, whiteouts, opaque dir) applied
// by our applier into per-layer upper dirs and mounted as overlay must equal GNU tar's sequential
// extraction (docs/images-offline.md Appendix F).
describe("layer applier fidelity: features image", () => {
  let work: string;
  let man: ReturnType<typeof readManifest>;
  let blobs: string;

  beforeAll(() => {
    work = tempDir("fidelity");
    script("features-layers.sh", [path.join(work, "fx")]);
    man = readManifest(path.join(work, "fx/man-features.json"));
    blobs = path.join(work, "fx/oci/blobs/sha256");
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("overlay of the applied layers equals GNU tar's result", async () => {
    const { dirs, results } = await applyChain(blobs, man, path.join(work, "ours"));
    expect(results.map((r) => r.skipped)).toEqual([0, 0, 0]);
    script("gnutar-unpack.sh", [blobs, path.join(work, "fx/man-features.json"), path.join(work, "gnu")]);
    const oracle = snapshot(path.join(work, "gnu"));
    const ours = await withOverlay(dirs, path.join(work, "mnt"), () =>
      standInsAsDevices(snapshot(path.join(work, "mnt"))),
    );
    expect(oracle.split("\n").length).toBeGreaterThan(300);
    expect(ours).toEqual(oracle);
    // the capability survived as raw bytes, setgid survived chown
    expect(ours).toMatch(/opt\/feat\/cap\tf\t0755\t.*security\.capability=0x0100000200200000/);
    expect(ours).toMatch(/opt\/feat\/sgid-shadow\tf\t02755\t0\t42\t/);
  });

  it("upper format: whiteouts are 0/0 char devices, opaque dirs carry the xattr", async () => {
    const { dirs } = await applyChain(blobs, man, path.join(work, "fmt"));
    const top = dirs[0]!;
    for (const p of ["linuxrc", "etc/hostname"]) {
      const st = fs.lstatSync(path.join(top, p));
      expect(st.isCharacterDevice() && st.rdev === 0).toBe(true);
    }
    expect(script("snapshot.sh", [top])).toMatch(/^home\td\t.*trusted\.overlay\.opaque=0x79/m);
    expect(fs.readdirSync(top)).not.toContain(".wh..wh.contree-whiteout");
  });

  it("the merged view without a mount agrees with the overlay mount", async () => {
    const { dirs } = await applyChain(blobs, man, path.join(work, "mv"));
    const view = new MergedView(dirs);
    const fromMount = await withOverlay(dirs, path.join(work, "mnt2"), () => {
      const out: string[] = [];
      const walk = (rel: string): void => {
        for (const n of fs.readdirSync(path.join(work, "mnt2", rel)).sort()) {
          const p = rel ? `${rel}/${n}` : n;
          const host = path.join(work, "mnt2", p);
          const st = fs.lstatSync(host);
          // a device stand-in shows as the device it records
          const dev = inertDeviceAt(host, st);
          const mode = dev === null ? st.mode : (dev.kind === "char" ? 0o20000 : 0o60000) | dev.mode;
          out.push(
            `/${p} ${mode.toString(8)} ${st.uid}:${st.gid} ${st.isFile() && dev === null ? st.size : 0}`,
          );
          if (st.isDirectory()) walk(p);
        }
      };
      walk("");
      return out;
    });
    const fromView: string[] = [];
    for await (const st of view.walk("/")) {
      if (st.path === "/") continue;
      const typeBits = {
        file: 0o100000,
        dir: 0o40000,
        symlink: 0o120000,
        char: 0o20000,
        block: 0o60000,
        fifo: 0o10000,
        socket: 0o140000,
      }[st.type];
      fromView.push(
        `${st.path} ${(typeBits | st.mode).toString(8)} ${st.uid}:${st.gid} ${st.type === "file" ? st.size : 0}`,
      );
    }
    expect(fromView).toEqual(fromMount);
  });
});
