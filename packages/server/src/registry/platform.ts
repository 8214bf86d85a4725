/** Host platform in OCI terms, and choosing a manifest for it from an index / manifest list. */
import type { Descriptor, Platform } from "./registry-client.js";

const NODE_TO_OCI_ARCH: Readonly<Record<string, string>> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le", // Node reports "ppc64" on little-endian POWER too
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips: "mips",
  mipsel: "mipsle",
};

export function hostPlatform(): Platform {
  const architecture = NODE_TO_OCI_ARCH[process.arch] ?? process.arch;
  if (architecture === "arm64") return { os: "linux", architecture, variant: "v8" };
  if (architecture === "arm") {
    const v = (process.config.variables as Record<string, unknown>)["arm_version"];
    return {
      os: "linux",
      architecture,
      variant: `v${typeof v === "string" || typeof v === "number" ? v : "7"}`,
    };
  }
  return { os: "linux", architecture };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** arm64's only variant is v8, so "" and "v8" are the same platform (the registry client bug in the doc). */
function normVariant(p: Platform): string {
  const v = p.variant ?? "";
  if (p.architecture === "arm64" && v === "") return "v8";
  return v;
}

/** Variants a host of `want` can run, best first (armv7 runs v6 and v5 code). */
function compatibleVariants(want: Platform): string[] {
  const v = normVariant(want);
  if (want.architecture === "arm") {
    const n = Number(v.replace(/^v/, "")) || 7;
    const out: string[] = [];
    for (let i = n; i >= 5; i--) out.push(`v${i}`);
    return out;
  }
  return [v];
}

/**
 * The best manifest descriptor for `want`, or undefined. Attestation entries (Docker's
 * `unknown/unknown` provenance manifests) never match. When `want` has no variant, an entry
 * without variant is preferred over one with.
 */
export function selectPlatform(entries: readonly Descriptor[], want: Platform): Descriptor | undefined {
  const candidates = entries.filter(
    (d) =>
      d.platform !== undefined &&
      d.platform.os === want.os &&
      d.platform.architecture === want.architecture &&
      d.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest",
  );
  if (candidates.length === 0) return undefined;
  const variants = compatibleVariants(want);
  for (const v of variants) {
    const hit = candidates.find((d) => d.platform !== undefined && normVariant(d.platform) === v);
    if (hit) return hit;
  }
  // An entry without a variant is a generic build for the architecture; take it last.
  return candidates.find((d) => !d.platform?.variant);
}
