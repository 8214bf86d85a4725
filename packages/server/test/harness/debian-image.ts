import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { RegistryHandle } from "./registry.js";

const MAKE_DEBIAN = join(dirname(fileURLToPath(import.meta.url)), "../../../../bench/import/make-debian.sh");

/**
 * Debian bookworm minbase, built offline with debootstrap by bench/import/make-debian.sh and
 * cached between runs (first build 1–4 min with the apt mirror, later runs only push). The
 * bench uses the same default cache directory.
 */
export const DEBIAN_CACHE = process.env["CONTREE_DEBIAN_IMAGE_CACHE"] ?? "/tmp/contree-bench-debian";

/** Pushes the image to `reg` (building it first if needed); returns its `docker://` reference. */
export async function pushDebian(reg: RegistryHandle): Promise<string> {
  // flock: test files running at the same time share one build.
  await promisify(execFile)("flock", [`${DEBIAN_CACHE}.lock`, "bash", MAKE_DEBIAN, DEBIAN_CACHE, reg.host], {
    timeout: 15 * 60_000,
    maxBuffer: 16 << 20,
  });
  return `docker://${reg.host}/bench/debian:bookworm`;
}

/** A file of the image's rootfs as the host sees it (the expected answer inside a sandbox). */
export function debianFile(rel: string): Buffer {
  return readFileSync(join(DEBIAN_CACHE, "rootfs", rel));
}
