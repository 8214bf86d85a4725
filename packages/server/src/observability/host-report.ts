import { constants } from "node:fs";
import { access, open, readFile } from "node:fs/promises";
import { runCommand } from "../sys/run-command.js";

export interface HostReportLine {
  name: string;
  ok: boolean;
  detail: string;
}

/** Facts about the host that decide which sandboxes can run here (used by `doctor`). */
export async function hostReport(): Promise<{ lines: HostReportLine[] }> {
  const lines: HostReportLine[] = [];
  const filesystems = await readFile("/proc/filesystems", "utf8").catch(() => "");
  lines.push({
    name: "overlayfs",
    ok: /\boverlay\b/.test(filesystems),
    detail: /\boverlay\b/.test(filesystems) ? "supported" : "not in /proc/filesystems",
  });
  lines.push({ name: "cgroups", ok: true, detail: await cgroupMode() });
  lines.push({
    name: "root",
    ok: process.getuid?.() === 0,
    detail: process.getuid?.() === 0 ? "running as root" : "not root: sandboxes need root",
  });
  for (const bin of ["crun", "runc", "runsc"]) {
    const v = await version(bin);
    lines.push({ name: bin, ok: v !== undefined, detail: v ?? "not found" });
  }
  lines.push({ name: "/dev/kvm", ok: true, detail: await kvmState() });
  return { lines };
}

async function cgroupMode(): Promise<string> {
  const mounts = await readFile("/proc/self/mounts", "utf8").catch(() => "");
  const v1 = /\scgroup\s/.test(mounts);
  const v2 = /\scgroup2\s/.test(mounts);
  if (v1 && v2) return "hybrid (cgroup v1 controllers + cgroup2)";
  if (v2) return "unified (cgroup v2)";
  if (v1) return "legacy (cgroup v1)";
  return "none mounted";
}

async function version(bin: string): Promise<string | undefined> {
  try {
    const r = await runCommand(bin, ["--version"], { timeoutMs: 5000 });
    if (r.code !== 0) return "present (version query failed)";
    return r.stdout.split("\n")[0]?.trim() || "present";
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return code === "ENOENT" ? undefined : "present (version query failed)";
  }
}

async function kvmState(): Promise<string> {
  try {
    await access("/dev/kvm", constants.F_OK);
  } catch {
    return "absent (no microVMs)";
  }
  try {
    const fh = await open("/dev/kvm", "r+");
    await fh.close();
    return "present and openable (microVM driver planned; nested PVM hosts cannot boot stock kernels)";
  } catch {
    return "present but not openable";
  }
}
