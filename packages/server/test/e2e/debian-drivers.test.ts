import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEBIAN_CACHE, debianFile, pushDebian } from "../harness/debian-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

// A mainstream image (Debian bookworm: glibc 2.36, coreutils 9.1, the base of python:*-slim and
// node:*) on every driver the server can pick, through the API. runsc 20221219 fails `ls` and
// `stat` here with EINVAL unless the statx workaround is on (runtime/gvisor/statx-fix.ts).

type Doc = Record<string, unknown> & {
  metadata: {
    result: {
      state: { exit_code: number; signal: number };
      stdout: { value: string; encoding?: string };
      stderr: { value: string; encoding?: string };
    };
  };
  result: { image: string | null };
};

const decode = (s: { value: string; encoding?: string }) =>
  s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

const SCRIPT = [
  "set -e",
  'echo "ls $(ls /usr/bin | wc -l)"',
  "stat -c 'stat %n %s %U:%G %F' /etc/passwd",
  "ls -la / > /dev/null && echo ls-la-ok",
  "cp -a /etc /tmp/etc-copy && diff -r --no-dereference /etc /tmp/etc-copy && echo cp-a-ok",
  'echo "find $(find /etc -maxdepth 1 | wc -l)"',
  "sh -c 'echo sh-c-ok'",
  "apt-get --version | head -n 1",
  `perl -e 'print "perl ", (stat "/etc/passwd")[7], "\\n"'`,
  "rm -rf /tmp/etc-copy",
].join("\n");

let reg: RegistryHandle;
let ref: string;

beforeAll(async () => {
  reg = await startRegistry();
  ref = await pushDebian(reg);
}, 15 * 60_000);
afterAll(async () => {
  await reg?.stop();
});

for (const driver of ["crun", "runc", "runsc"] as const) {
  describe(`Debian bookworm on ${driver}`, () => {
    let t: TestServer;
    let base: string;

    beforeAll(async () => {
      t = await startTestServer({ runtime: driver });
      const r = await t.api("/v1/images/import", {
        method: "POST",
        json: { registry: { url: ref }, tag: "debian:bookworm" },
      });
      const { uuid } = (await r.json()) as { uuid: string };
      const op = await waitOperation(t, uuid, 300_000);
      expect(op["status"], String(op["error"])).toBe("SUCCESS");
      base = String(op["result_image_uuid"]);
    }, 600_000);
    afterAll(async () => {
      await t?.close();
    });

    async function run(body: Record<string, unknown>): Promise<Doc> {
      const r = await t.api("/v1/instances", { method: "POST", json: { image: base, ...body } });
      const j = (await r.json()) as { uuid: string; error?: string };
      expect(r.status, j.error).toBe(202);
      return (await waitOperation(t, j.uuid, 120_000)) as Doc;
    }

    it("is the driver the server runs", () => {
      expect(t.server.runtime.name).toBe(driver);
      expect(t.server.runtime.why).toMatch(new RegExp(`${driver}: .*→ ${driver}$`));
    });

    it("runs ls, stat, cp -a, find, sh -c, apt-get and perl like on the host", async () => {
      const op = await run({ command: SCRIPT, shell: true, disposable: true });
      const out = decode(op.metadata.result.stdout);
      const err = decode(op.metadata.result.stderr);
      expect(err).toBe("");
      expect(op.metadata.result.state.exit_code).toBe(0);
      const binCount = readdirSync(join(DEBIAN_CACHE, "rootfs/usr/bin")).length;
      const etcCount = readdirSync(join(DEBIAN_CACHE, "rootfs/etc")).length + 1;
      const passwd = debianFile("etc/passwd").length;
      expect(out.split("\n")).toEqual([
        `ls ${binCount}`,
        `stat /etc/passwd ${passwd} root:root regular file`,
        "ls-la-ok",
        "cp-a-ok",
        `find ${etcCount}`,
        "sh-c-ok",
        expect.stringMatching(/^apt 2\.6\.\d+ \(\w+\)$/),
        `perl ${passwd}`,
        "",
      ]);
    });

    it("runs a command without a shell (PATH lookup, argv, exit code)", async () => {
      const op = await run({ command: "stat", args: ["-c", "%n %s", "/etc/passwd"] });
      expect(decode(op.metadata.result.stdout)).toBe(`/etc/passwd ${debianFile("etc/passwd").length}\n`);
      expect(op.metadata.result.state.exit_code).toBe(0);
      // Nothing written: the run's result is the input image (no mount point left in the upper).
      expect(op.result.image).toBe(base);
      const fail = await run({ command: "ls", args: ["/no/such/path"], disposable: true });
      expect(fail.metadata.result.state.exit_code).toBe(2);
      expect(decode(fail.metadata.result.stderr)).toContain("No such file or directory");
    });
  });
}
