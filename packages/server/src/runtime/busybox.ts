/** A tiny root filesystem from the host's static busybox, for self-tests and conformance tests. */
import { chmod, copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { failedPrecondition } from "../core/errors.js";
import { runCommand } from "../sys/run-command.js";

export const HOST_BUSYBOX = "/bin/busybox";

/** Builds `<dir>` with /bin/busybox, its applets as symlinks, passwd/group and the usual mount points. */
export async function buildBusyboxRootfs(dir: string, busybox = HOST_BUSYBOX): Promise<void> {
  const list = await runCommand(busybox, ["--list"]);
  if (list.code !== 0) throw failedPrecondition("static busybox is not available");
  for (const d of ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "home/user", "mnt", "run", "var/tmp"]) {
    await mkdir(path.join(dir, d), { recursive: true });
  }
  await chmod(path.join(dir, "tmp"), 0o1777);
  await copyFile(busybox, path.join(dir, "bin/busybox"));
  await chmod(path.join(dir, "bin/busybox"), 0o755);
  const applets = list.stdout.split("\n").filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox");
  await Promise.all(applets.map((a) => symlink("busybox", path.join(dir, "bin", a)).catch(() => undefined)));
  await writeFile(
    path.join(dir, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
  );
  await writeFile(path.join(dir, "etc/group"), "root:x:0:\nuser:x:1000:\n");
  // Present so the resolv.conf bind mount does not create a file in the run's upper.
  await writeFile(path.join(dir, "etc/resolv.conf"), "");
}
