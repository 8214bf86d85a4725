/**
 * Defence in depth of the sandbox, attacked the way a tenant would: an ordinary (non-admin)
 * token of its own project, against the real daemon process, for every driver the server can
 * run: `--runtime oci` (crun), the same with a `crun` on PATH that fails (selection falls to
 * runc), and `--runtime gvisor` (runsc).
 *  - crun: sandbox root is an unprivileged host uid (user namespace), and host-only privileges
 *    (mknod, reading root-only host files) do nothing;
 *  - files keep their in-image owners, modes, whiteouts and opaque dirs through a committed image;
 *  - the mount table a sandbox reads names no host path;
 *  - after a SIGKILL of the server, a running sandbox still dies at its timeout.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountsUnder, reclaim } from "../../src/runtime/reclaim.js";
import { openEvents } from "../events/sse-client.js";
import { type Daemon, runCli, startDaemon } from "../harness/daemon.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

interface OpDoc {
  status: string;
  error: string | null;
  result_image_uuid?: string | null;
  metadata?: { result?: { stdout?: { value: string; encoding?: string }; state?: { exit_code: number } } };
}

const decode = (s: { value: string; encoding?: string } | undefined) =>
  s === undefined ? "" : s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Host processes whose cgroup lies in the sandbox cgroup of `id`. */
function processesIn(id: string): number[] {
  const pids: number[] = [];
  const re = new RegExp(`/contree/${id}(/|$)`, "m");
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (re.test(readFileSync(`/proc/${p}/cgroup`, "utf8"))) pids.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

describe.each([
  { driver: "crun", runtime: "oci", userns: true, hideCrun: false },
  { driver: "runc", runtime: "oci", userns: false, hideCrun: true },
  { driver: "runsc", runtime: "gvisor", userns: false, hideCrun: false },
])("tenant attacks on the sandbox ($driver)", ({ driver, runtime, userns, hideCrun }) => {
  let registry: RegistryHandle;
  let daemon: Daemon | undefined;
  let dataDir = "";
  let secret = "";
  let shimDir = "";

  const api = async (path: string, json?: unknown): Promise<Response> =>
    fetch(`${(daemon as Daemon).url}${path}`, {
      method: json === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${secret}`,
        ...(json === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });

  async function waitOp(id: string): Promise<OpDoc> {
    let doc: OpDoc = { status: "", error: null };
    await waitFor(
      `operation ${id}`,
      async () => {
        doc = (await (await api(`/v1/operations/${id}`)).json()) as OpDoc;
        return ["SUCCESS", "FAILED", "CANCELLED"].includes(doc.status);
      },
      120_000,
    );
    return doc;
  }

  async function spawn(body: Record<string, unknown>): Promise<string> {
    const r = await api("/v1/instances", { image: "tag:busybox:latest", shell: true, ...body });
    const j = (await r.json()) as { uuid: string; error?: string };
    expect(r.status, j.error).toBe(202);
    return j.uuid;
  }

  async function runOk(body: Record<string, unknown>): Promise<{ out: string; image: string }> {
    const doc = await waitOp(await spawn(body));
    expect(doc.status, `${doc.error}\n${daemon?.stderr().slice(-2000)}`).toBe("SUCCESS");
    return { out: decode(doc.metadata?.result?.stdout), image: String(doc.result_image_uuid) };
  }

  beforeAll(async () => {
    const fx = await fixtures();
    registry = await startRegistry({ seedFrom: fx.registryData });
    const env: Record<string, string> = {
      CONTREE_LOG_LEVEL: "info",
      CONTREE_INSECURE_REGISTRIES: registry.host,
    };
    if (hideCrun) {
      // `crun --version` fails: OCI selection falls to runc.
      shimDir = await mkdtemp(join(tmpdir(), "no-crun-"));
      await writeFile(join(shimDir, "crun"), "#!/bin/sh\nexit 127\n");
      await chmod(join(shimDir, "crun"), 0o755);
      env["PATH"] = `${shimDir}:${process.env["PATH"] ?? "/usr/bin:/bin"}`;
    }
    daemon = await startDaemon({ args: ["--runtime", runtime], env });
    // The start-up log names the driver it selected.
    expect(daemon.stdout() + daemon.stderr()).toContain(`"runtime":"${driver}"`);
    dataDir = daemon.dataDir;
    const dd = ["--data-dir", dataDir];
    const project = await runCli(["project", "create", "tenant", ...dd]);
    expect(project.code, project.stderr).toBe(0);
    const tok = await runCli([
      "token",
      "create",
      "--project",
      "tenant",
      "--permissions",
      "list,spawn,spawn_disposable,import",
      ...dd,
    ]);
    expect(tok.code, tok.stderr).toBe(0);
    secret = tok.stdout.trim();
    const imp = await api("/v1/images/import", {
      registry: { url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}` },
      tag: "busybox:latest",
    });
    expect(imp.status).toBe(202);
    const done = await waitOp(((await imp.json()) as { uuid: string }).uuid);
    expect(done.status, String(done.error)).toBe("SUCCESS");
  }, 180_000);

  afterAll(async () => {
    if (daemon !== undefined) {
      daemon.proc.kill("SIGKILL");
      await daemon.exited;
    }
    // Whatever the assertions found, nothing of this data dir outlives the test.
    if (dataDir !== "") {
      await reclaim({ stateDir: join(dataDir, "runtime"), mountRoots: [dataDir] }).catch(() => undefined);
      for (const m of mountsUnder([dataDir])) {
        const { unmount } = await import("../../src/sys/overlay-mount.js");
        await unmount(m).catch(() => undefined);
      }
      await rm(dataDir, { recursive: true, force: true });
    }
    await registry?.stop();
    if (shimDir !== "") await rm(shimDir, { recursive: true, force: true });
  });

  if (userns)
    it("sandbox root is an unprivileged host uid: host privileges do nothing", async () => {
      const { out } = await runOk({
        command:
          "cat /proc/self/uid_map; mknod /tmp/n c 1 3 && echo MKNOD-OK; " +
          "f=$(find /sys/module -type f -perm 0400 2>/dev/null | head -n 1); echo file=$f; " +
          'cat "$f" >/dev/null 2>&1 && echo DAC-READ || echo DAC-DENIED',
        disposable: true,
      });
      const map = (out.split("\n")[0] ?? "").trim().split(/\s+/).map(Number);
      expect(map[0]).toBe(0);
      expect(map[1]).toBeGreaterThan(0);
      expect(map[2]).toBeLessThan(4294967295);
      expect(out).not.toContain("MKNOD-OK");
      expect(out).toMatch(/file=\/sys\/module\/\S+/);
      expect(out).toContain("DAC-DENIED");
    });

  it("files keep their in-image owners, modes, whiteouts and opaque dirs in the committed image", async () => {
    const up = await fetch(`${(daemon as Daemon).url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/octet-stream" },
      body: "uploaded\n",
    });
    expect(up.status).toBe(201);
    const file = ((await up.json()) as { uuid: string }).uuid;
    const first = await runOk({
      // An uploaded file owned by 1000 in a directory that does not exist yet, and a missing cwd.
      files: { "/srv/up/f": { uuid: file, uid: 1000, gid: 1000, mode: "0640" } },
      cwd: "/work/here",
      command:
        "stat -c '%u:%g %a %n' /srv/up/f /srv/up; pwd; " +
        "echo a > /a; chown 1000:1000 /a; cp /bin/busybox /bin/suid; chmod 4755 /bin/suid; " +
        "mkdir -p /home/u; chown 1000:1000 /home/u; rm /bin/cat; rm -rf /etc; mkdir /etc; echo n > /etc/new",
    });
    expect(first.out).toBe("1000:1000 640 /srv/up/f\n0:0 755 /srv/up\n/work/here\n");
    const second = await runOk({
      image: first.image,
      command:
        "stat -c '%u:%g %a %n' /a /bin/suid /home/u /bin/busybox /srv/up/f; ls /etc; ls /bin/cat 2>/dev/null || echo no-cat",
      disposable: true,
    });
    expect(second.out).toBe(
      "1000:1000 644 /a\n0:0 4755 /bin/suid\n1000:1000 755 /home/u\n0:0 755 /bin/busybox\n1000:1000 640 /srv/up/f\nnew\nno-cat\n",
    );
  });

  it("the mount table names no host path", async () => {
    const { out } = await runOk({
      command: "cat /proc/mounts; echo ===; cat /proc/self/mountinfo",
      networking: { enabled: true },
      disposable: true,
    });
    expect(out).toContain("===");
    for (const leak of [dataDir, "/tmp/contree-", "/run/contree-binds", "/var/lib"])
      expect(out, `mount table shows ${leak}`).not.toContain(leak);
  });

  it("a sandbox dies at its timeout even after the server was SIGKILLed", async () => {
    const d = daemon as Daemon;
    const op = await spawn({ command: "exec sleep 600", timeout: 3 });
    await waitFor(
      "the spawn event",
      async () =>
        (await (await openEvents({ url: d.url, token: secret }, op)).done(10_000)).some(
          (e) => e.type === "spawn",
        ),
      60_000,
    );
    const markers = join(dataDir, "runtime", "sandboxes");
    const [id] = existsSync(markers) ? readdirSync(markers) : [];
    expect(id).toBeDefined();
    await waitFor("the sandbox's processes", () => processesIn(id as string).length > 0, 30_000);
    d.proc.kill("SIGKILL");
    await d.exited;
    daemon = undefined;
    // The server is gone; its sandbox is not, yet.
    expect(processesIn(id as string).length).toBeGreaterThan(0);
    // Timeout 3 s + the watchdog's grace: long gone well before this bound.
    await waitFor("the sandbox's processes to end", () => processesIn(id as string).length === 0, 30_000);
  }, 120_000);
});
