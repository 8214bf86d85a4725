import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyChain,
  FIXTURES,
  readManifest,
  script,
  snapshot,
  standInsAsDevices,
  tempDir,
  withOverlay,
} from "./helpers.js";

// Slow tier: a debootstrapped Debian bookworm minbase (≈6,600 entries: setgid with non-root
// groups, sticky dirs, absolute symlinks, device nodes) plus a second layer with whiteouts, an
// opaque dir, a directory replacing a file and a hardlink to a lower file (copy-up). Needs the
// Debian mirror (45–90 s). Set CONTREE_DEB_CACHE to a directory to reuse downloaded packages.
const MIRROR =
  process.env.CONTREE_DEB_MIRROR ??
  (() => {
    const srcs = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"];
    for (const f of srcs) {
      const text = fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
      const m = /^(?:URIs:|deb)\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S*debian\S*)/m.exec(
        text.replace(/^deb-src.*$/gm, ""),
      );
      if (m?.[1] && !m[1].includes("security")) return m[1];
    }
    return "http://deb.debian.org/debian";
  })();

const LAYER2 = String.raw`
import tarfile, io, sys
out = sys.argv[1]
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    def add(name, typ, data=None, **kw):
        ti = tarfile.TarInfo(name); ti.type = typ; ti.mtime = 1700000000
        ti.mode = kw.get('mode', 0o755 if typ == tarfile.DIRTYPE else 0o644)
        ti.uid = kw.get('uid', 0); ti.gid = kw.get('gid', 0)
        if 'linkname' in kw: ti.linkname = kw['linkname']
        if data is not None: ti.size = len(data); t.addfile(ti, io.BytesIO(data))
        else: t.addfile(ti)
    add('usr/share/doc/.wh..wh..opq', tarfile.REGTYPE, b'')
    add('usr/share/doc/README', tarfile.REGTYPE, b'only this\n')
    add('usr/share/.wh.man', tarfile.REGTYPE, b'')
    add('etc/.wh.motd', tarfile.REGTYPE, b'')
    add('etc/hostname', tarfile.DIRTYPE, mode=0o2750, uid=1, gid=42)
    add('etc/hostname/inside', tarfile.REGTYPE, b'x\n')
    add('usr/bin/bash-hardlink', tarfile.LNKTYPE, linkname='usr/bin/bash')
    add('var/log/new.log', tarfile.REGTYPE, b'log\n', mode=0o640, uid=0, gid=4)
    add('tmp', tarfile.DIRTYPE, mode=0o1777)
`;

describe("layer applier fidelity: Debian minbase", () => {
  let work: string;
  let cache: string;

  beforeAll(() => {
    work = tempDir("debian");
    cache = process.env.CONTREE_DEB_CACHE ?? path.join(work, "debcache");
    fs.mkdirSync(cache, { recursive: true });
    const rootfs = path.join(work, "rootfs");
    execFileSync("debootstrap", ["--variant=minbase", `--cache-dir=${cache}`, "bookworm", rootfs, MIRROR], {
      stdio: ["ignore", "ignore", "pipe"],
      maxBuffer: 64 << 20,
    });
    fs.rmSync(path.join(rootfs, "var/lib/apt/lists"), { recursive: true, force: true });
    fs.rmSync(path.join(rootfs, "var/cache/apt/archives"), { recursive: true, force: true });
    const oci = path.join(work, "oci");
    const desc = execFileSync(
      "bash",
      ["-c", `. "${FIXTURES}/ocilib.sh" && oci_init "$1" && oci_layer "$1" "$2" none`, "-", oci, rootfs],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    );
    const l1 = JSON.parse(desc) as { digest: string; mediaType: string };
    const l2file = path.join(work, "layer2.tar");
    execFileSync("python3", ["-c", LAYER2, l2file]);
    const l2digest = execFileSync("sha256sum", [l2file], { encoding: "utf8" }).split(" ")[0]!;
    fs.renameSync(l2file, path.join(oci, "blobs/sha256", l2digest));
    const man = {
      schemaVersion: 2,
      layers: [
        { mediaType: l1.mediaType, digest: l1.digest },
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${l2digest}` },
      ],
    };
    fs.writeFileSync(path.join(work, "man.json"), JSON.stringify(man));
    fs.rmSync(rootfs, { recursive: true, force: true });
  }, 600_000);
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("overlay of the applied layers equals GNU tar's result", async () => {
    const blobs = path.join(work, "oci/blobs/sha256");
    const man = readManifest(path.join(work, "man.json"));
    const t0 = performance.now();
    const { dirs, results } = await applyChain(blobs, man, path.join(work, "ours"));
    const ours = performance.now() - t0;
    expect(results[0]!.entries).toBeGreaterThan(5000);
    expect(results.map((r) => r.skipped)).toEqual([0, 0]);
    const t1 = performance.now();
    script("gnutar-unpack.sh", [blobs, path.join(work, "man.json"), path.join(work, "gnu")]);
    const gnu = performance.now() - t1;
    console.log(
      `debian minbase, 2 layers: applier ${ours.toFixed(0)} ms, gnutar-unpack.sh ${gnu.toFixed(0)} ms`,
    );
    const oracle = snapshot(path.join(work, "gnu"));
    const got = await withOverlay(dirs, path.join(work, "mnt"), () =>
      standInsAsDevices(snapshot(path.join(work, "mnt"))),
    );
    expect(oracle).toContain("usr/bin/bash-hardlink");
    expect(got).toEqual(oracle);
  }, 300_000);
});
