import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import zlib from "node:zlib";
import { type ApplyLayerResult, applyLayer } from "../../src/layers/layer-applier.js";

export const FIXTURES = path.resolve(import.meta.dirname, "../fixtures");

export interface LayerDesc {
  mediaType: string;
  digest: string;
}

export interface Manifest {
  layers: LayerDesc[];
  expect?: string;
  inside?: string[];
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `contree-${prefix}-`));
}

export function script(name: string, args: string[], opts: { input?: string } = {}): string {
  return execFileSync("bash", [path.join(FIXTURES, name), ...args], {
    encoding: "utf8",
    input: opts.input,
    maxBuffer: 256 * 1024 * 1024,
  });
}

export function readManifest(file: string): Manifest {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Manifest;
}

/** The uncompressed tar stream of a layer blob. */
export function openLayer(blobs: string, layer: LayerDesc): Readable {
  const file = fs.createReadStream(path.join(blobs, layer.digest.replace(/^sha256:/, "")), {
    highWaterMark: 1 << 20,
  });
  if (layer.mediaType.endsWith("gzip")) return file.pipe(zlib.createGunzip());
  return file;
}

/** Apply every layer of a manifest into OUT/L1, OUT/L2, …; returns the dirs top-most first. */
export async function applyChain(
  blobs: string,
  man: Manifest,
  out: string,
): Promise<{ dirs: string[]; results: ApplyLayerResult[] }> {
  const below: string[] = [];
  const results: ApplyLayerResult[] = [];
  for (const [i, layer] of man.layers.entries()) {
    const dest = path.join(out, `L${i + 1}`);
    fs.mkdirSync(dest, { recursive: true });
    results.push(await applyLayer(openLayer(blobs, layer), { dest, lowers: [...below].reverse() }));
    below.push(dest);
  }
  return { dirs: [...below].reverse(), results };
}

/** Mount the layer dirs read-only as overlay at mnt for the duration of fn. */
export async function withOverlay<T>(
  dirsTopFirst: string[],
  mnt: string,
  fn: () => Promise<T> | T,
): Promise<T> {
  fs.mkdirSync(mnt, { recursive: true });
  if (dirsTopFirst.length === 1) {
    execFileSync("mount", ["--bind", "-o", "ro", dirsTopFirst[0]!, mnt]);
  } else {
    execFileSync("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${dirsTopFirst.join(":")}`, mnt]);
  }
  try {
    return await fn();
  } finally {
    execFileSync("umount", [mnt]);
  }
}

/**
 * snapshot.sh output without the date column; directory link counts are dropped because
 * overlayfs reports 1 for merged directories.
 */
export function snapshot(dir: string): string {
  return script("snapshot.sh", [dir])
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const f = l.split("\t");
      if (f[1] === "d") f[7] = "-";
      return [...f.slice(0, 8), ...f.slice(9)].join("\t");
    })
    .join("\n");
}

/**
 * A snapshot of a mounted chain shows device stand-ins as empty mode-000 files with the device
 * record in an xattr (the applier never creates live device nodes): rewrite those lines the way
 * snapshot.sh prints the device itself, so the tree compares with GNU tar's.
 */
export function standInsAsDevices(snap: string): string {
  return snap
    .split("\n")
    .map((l) => {
      const f = l.split("\t");
      const last = f[f.length - 1] ?? "";
      const m = /(?:^| )trusted\.contree\.device=0x([0-9a-f]+) /.exec(last);
      if (m === null || f[1] !== "f") return l;
      const [t, maj, min, mode] = Buffer.from(m[1]!, "hex").toString("latin1").split(" ");
      const bits = Number.parseInt(mode!, 8);
      f[1] = t!;
      f[2] = bits === 0 ? "0" : `0${bits.toString(8)}`;
      f[5] = "dev";
      const rest = last.replace(m[0], m[0].startsWith(" ") ? " " : "").trim();
      f[f.length - 1] =
        `${Number(maj).toString(16)}:${Number(min).toString(16)} ${rest === "" ? "" : `${rest} `}`;
      return f.join("\t");
    })
    .join("\n");
}

/** Every path under root with its type, size and mtime, for "nothing changed" checks. */
export function treeState(root: string, skip: (p: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (skip(p)) continue;
      const st = fs.lstatSync(p);
      out.push(`${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.nlink}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}
