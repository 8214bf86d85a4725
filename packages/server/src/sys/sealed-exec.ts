/**
 * Sealed in-memory copies of OCI runtime binaries. crun and runc protect the host binary from
 * a container writing through /proc/self/exe (CVE-2019-5736) by copying themselves into a
 * sealed memfd and re-executing on every invocation (about 6 ms per sandbox here) unless they
 * already run from one. We make that copy once per process and run `/proc/self/fd/N`.
 */
import { accessSync, constants, realpathSync } from "node:fs";
import path from "node:path";
import { nativeSys } from "./native-sys.js";

const cache = new Map<string, string | null>();

function resolveOnPath(binary: string): string | null {
  const candidates = binary.includes("/")
    ? [binary]
    : (process.env["PATH"] ?? "").split(":").map((d) => path.join(d || ".", binary));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return realpathSync(c);
    } catch {
      // next
    }
  }
  return null;
}

/**
 * `/proc/self/fd/N` for a sealed copy of `binary` (looked up on PATH now), or null when the
 * native addon is missing or the copy fails: callers then run the binary itself.
 */
export function sealedExecutable(binary: string): string | null {
  const sys = nativeSys();
  if (sys === null) return null;
  const real = resolveOnPath(binary);
  if (real === null) return null;
  const hit = cache.get(real);
  if (hit !== undefined) return hit;
  let out: string | null = null;
  try {
    out = `/proc/self/fd/${sys.sealedCopy(real)}`;
  } catch {
    out = null;
  }
  cache.set(real, out);
  return out;
}
