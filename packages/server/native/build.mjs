// Builds contree_sys.node with the system C compiler against Node's own headers (the ones
// node-gyp would use: $npm_config_nodedir/include/node, else next to this node binary).
// A plain cc call: one C file, no node-gyp project, nothing downloaded.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, "include", "node"),
  join(dirname(dirname(process.execPath)), "include", "node"),
  "/usr/include/node",
].filter(Boolean);
const include = candidates.find((d) => existsSync(join(d, "node_api.h")));
if (!include) {
  console.error(`contree_sys: node_api.h not found (looked in ${candidates.join(", ")})`);
  process.exit(1);
}
const out = join(here, "build", "contree_sys.node");
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC || "cc";
execFileSync(
  cc,
  [
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-fPIC",
    "-shared",
    "-fvisibility=hidden",
    "-DNODE_GYP_MODULE_NAME=contree_sys",
    `-I${include}`,
    "-o",
    out,
    join(here, "contree_sys.c"),
    "-lpthread",
  ],
  { stdio: "inherit" },
);
console.log(`built ${out}`);

// The cgroup-joining exec helper (cgexec.c): static, so starting it costs one exec and no
// dynamic linking.
const helper = join(here, "build", "contree-cgexec");
execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-static", "-o", helper, join(here, "cgexec.c")], {
  stdio: "inherit",
});
console.log(`built ${helper}`);

// Static, since each runs where no particular libc can be counted on: probe.c, the driver
// self-test of what glibc/coreutils userlands need, and statx-fix.c, the gVisor entry point that
// strips a statx flag this runsc rejects (both inside sandboxes); watchdog.c, which enforces a
// sandbox's timeout when the server is gone; init.c, the entry point of every sandboxed process
// (exec with a shell's 127/126, wait4 and its rusage reported to the host).
for (const [name, src] of [
  ["contree-init", "init.c"],
  ["contree-probe", "probe.c"],
  ["contree-statx-fix", "statx-fix.c"],
  ["contree-watchdog", "watchdog.c"],
]) {
  const bin = join(here, "build", name);
  execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-static", "-o", bin, join(here, src)], {
    stdio: "inherit",
  });
  console.log(`built ${bin}`);
}
