/**
 * Start-up driver selection: probe every candidate, keep the strongest one whose self-test
 * passes. The self-test runs the userland probe (self-test.ts), so a driver on which a
 * glibc/coreutils image would fail (`ls`: "Invalid argument") is never picked. The report
 * and explainSelection() are what `doctor` prints and what the server logs.
 */
import { mkdir } from "node:fs/promises";
import { failedPrecondition, invalidArgument } from "../core/errors.js";
import { RunscDriver, type RunscPlatform, type StatxFixMode } from "./gvisor/runsc-driver.js";
import { CrunDriver } from "./oci/crun-driver.js";
import type { OciCliDriverOptions } from "./oci/oci-cli-driver.js";
import { RuncDriver } from "./oci/runc-driver.js";
import type { DriverKind, DriverName, RuntimeDriver, SelfTestResult } from "./runtime-driver.js";

/** A kind (the first of its drivers that passes) or one driver by name. */
type DriverPreference = "auto" | "gvisor" | "oci" | "crun" | "runc" | "runsc";

interface DriverReport {
  name: DriverName;
  kind: DriverKind;
  found: boolean;
  version?: string;
  isolation?: string;
  selfTest?: SelfTestResult;
}

interface SelectOptions extends OciCliDriverOptions {
  /** Scratch space for self-tests. */
  workDir: string;
  runscPlatform?: RunscPlatform;
  runscStatxFix?: StatxFixMode;
  signal?: AbortSignal;
  /** Probe every candidate even after one passed (doctor); start-up stops at the first. */
  probeAll?: boolean;
  /** Test seam: the candidates, strongest first. */
  candidates?: RuntimeDriver[];
}

/** Strongest first: gVisor puts a user-space kernel between sandbox and host; crun is faster than runc. */
function candidateDrivers(pref: DriverPreference, o: SelectOptions): RuntimeDriver[] {
  const base = { stateDir: o.stateDir, ...(o.egress === undefined ? {} : { egress: o.egress }) };
  const gvisor = () =>
    new RunscDriver({ ...base, platform: o.runscPlatform ?? "auto", statxFix: o.runscStatxFix ?? "auto" });
  const oci = () => [new CrunDriver(base), new RuncDriver(base)];
  switch (pref) {
    case "gvisor":
    case "runsc":
      return [gvisor()];
    case "crun":
      return [new CrunDriver(base)];
    case "runc":
      return [new RuncDriver(base)];
    case "oci":
      return oci();
    case "auto":
      return [gvisor(), ...oci()];
    default:
      throw invalidArgument("unknown runtime preference");
  }
}

/** Runs the candidates' self-tests; `driver` is null when none passes. */
export async function probeDrivers(
  pref: DriverPreference,
  o: SelectOptions,
): Promise<{ driver: RuntimeDriver | null; report: DriverReport[] }> {
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
  return { driver: chosen, report };
}

export async function selectDriver(
  pref: DriverPreference,
  o: SelectOptions,
): Promise<{ driver: RuntimeDriver; report: DriverReport[] }> {
  const { driver, report } = await probeDrivers(pref, o);
  if (driver === null)
    throw failedPrecondition(`no usable sandbox runtime (${explainSelection(report, null)})`);
  return { driver, report };
}

/**
 * Which driver this host gets and why, in one line: every candidate before the chosen one
 * with the reason it was passed over, then the chosen one with its workaround, if any.
 * E.g. "runsc rejected: glibc/coreutils userland would fail: statx-noautomount EINVAL → crun".
 */
export function explainSelection(report: readonly DriverReport[], chosen: DriverName | null): string {
  const parts: string[] = [];
  for (const r of report) {
    const st = r.selfTest;
    if (r.name === chosen && st?.ok) {
      parts.push(st.note === undefined ? `${r.name}: self-test passed` : `${r.name}: ${st.note}`);
      break;
    }
    if (!r.found) parts.push(`${r.name}: not installed`);
    else if (st !== undefined && !st.ok) parts.push(`${r.name} rejected: ${st.reason}`);
  }
  return `${parts.join("; ")} → ${chosen ?? "no usable driver"}`;
}
