/**
 * Start-up driver selection: probe every candidate, keep the strongest one whose self-test
 * passes. The report is what `doctor` prints and what the server logs.
 */
import { mkdir } from "node:fs/promises";
import { failedPrecondition, invalidArgument } from "../core/errors.js";
import { RunscDriver, type RunscPlatform } from "./gvisor/runsc-driver.js";
import { CrunDriver } from "./oci/crun-driver.js";
import type { OciCliDriverOptions } from "./oci/oci-cli-driver.js";
import { RuncDriver } from "./oci/runc-driver.js";
import type { DriverKind, DriverName, RuntimeDriver } from "./runtime-driver.js";

export type DriverPreference = "auto" | "gvisor" | "oci";

export interface DriverReport {
  name: DriverName;
  kind: DriverKind;
  found: boolean;
  version?: string;
  isolation?: string;
  selfTest?: { ok: true } | { ok: false; reason: string };
}

export interface SelectOptions extends OciCliDriverOptions {
  /** Scratch space for self-tests. */
  workDir: string;
  runscPlatform?: RunscPlatform;
  signal?: AbortSignal;
  /** Probe every candidate even after one passed (doctor); start-up stops at the first. */
  probeAll?: boolean;
  /** Test seam: the candidates, strongest first. */
  candidates?: RuntimeDriver[];
}

/** Strongest first: gVisor puts a user-space kernel between sandbox and host; crun is faster than runc. */
export function candidateDrivers(pref: DriverPreference, o: SelectOptions): RuntimeDriver[] {
  const base = { stateDir: o.stateDir, ...(o.egress === undefined ? {} : { egress: o.egress }) };
  const gvisor = () => new RunscDriver({ ...base, platform: o.runscPlatform ?? "auto" });
  const oci = () => [new CrunDriver(base), new RuncDriver(base)];
  switch (pref) {
    case "gvisor":
      return [gvisor()];
    case "oci":
      return oci();
    case "auto":
      return [gvisor(), ...oci()];
    default:
      throw invalidArgument("unknown runtime preference");
  }
}

export async function selectDriver(
  pref: DriverPreference,
  o: SelectOptions,
): Promise<{ driver: RuntimeDriver; report: DriverReport[] }> {
  await mkdir(o.workDir, { recursive: true });
  const report: DriverReport[] = [];
  let chosen: RuntimeDriver | null = null;
  for (const d of o.candidates ?? candidateDrivers(pref, o)) {
    const entry: DriverReport = { name: d.name, kind: d.kind, found: false };
    report.push(entry);
    try {
      entry.version = await d.version();
      entry.found = true;
    } catch {
      continue;
    }
    if (chosen !== null && !o.probeAll) continue;
    entry.selfTest = await d.selfTest({
      workDir: o.workDir,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    entry.isolation = d.isolation;
    if (entry.selfTest.ok && chosen === null) chosen = d;
  }
  if (chosen === null) {
    const why = report.map(
      (r) => `${r.name}: ${!r.found ? "not found" : r.selfTest?.ok ? "ok" : (r.selfTest?.reason ?? "?")}`,
    );
    throw failedPrecondition(`no usable sandbox runtime (${why.join("; ")})`);
  }
  return { driver: chosen, report };
}
