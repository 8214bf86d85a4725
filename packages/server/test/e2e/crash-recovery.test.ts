/**
 * Crash safety of the real daemon process (runtime oci): runs that sleep in their sandboxes, a
 * run that wrote files, a networked run and an import stalled mid-layer are all in flight when
 * the daemon gets SIGKILL. The test first checks what the crash leaves on the host (the daemon
 * runs in the test's own mount namespace, so its overlay mounts outlive it), then restarts the
 * daemon on the same data dir and checks that start-up reclaimed every piece, failed every
 * in-flight operation with a completion event, kept every committed image intact, and runs again.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountsUnder, reclaim } from "../../src/runtime/reclaim.js";
import { openEvents } from "../events/sse-client.js";
import { type Daemon, startDaemon } from "../harness/daemon.js";
import { type FaultyProxy, startFaultyProxy } from "../harness/faulty-proxy.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

const run = promisify(execFile);
const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];
/** Long enough that only a kill can end these sandboxes while the test looks at them. */
const SLEEP = "sleep 600";

interface OpDoc {
  status: string;
  error: string | null;
  result_image_uuid?: string | null;
  metadata?: { result?: { stdout?: { value: string; encoding?: string } } };
}

const decode = (s: { value: string; encoding?: string } | undefined) =>
  s === undefined ? "" : s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

function client(d: Daemon) {
  return async (path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    headers.set("authorization", `Bearer ${d.token}`);
    if (json !== undefined) headers.set("content-type", "application/json");
    return fetch(`${d.url}${path}`, {
      ...rest,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
  };
}

async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sandbox cgroup dirs of `id` in every mounted hierarchy (`/<hierarchy>/contree/<id>`). */
function cgroupDirs(id: string): string[] {
  const out: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    const d = join("/sys/fs/cgroup", h, "contree", id);
    if (existsSync(d)) out.push(d);
  }
  return out;
}

/** Host processes whose cgroup path lies in the sandbox cgroup of `id`. */
function processesIn(id: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      // In `/contree/<id>` itself (crun started inside it) or below it (a runtime's `ctr`).
      if (new RegExp(`/contree/${id}(/|$)`, "m").test(readFileSync(`/proc/${p}/cgroup`, "utf8")))
        pids.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Polls an operation until it is terminal; its document then. */
async function waitTerminal(api: ReturnType<typeof client>, id: string): Promise<OpDoc> {
  let doc: OpDoc = { status: "", error: null };
  await waitFor(
    `operation ${id}`,
    async () => {
      doc = (await (await api(`/v1/operations/${id}`)).json()) as OpDoc;
      return TERMINAL.includes(doc.status);
    },
    120_000,
  );
  return doc;
}

const ls = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).sort();

describe("crash recovery: SIGKILL of the daemon mid-run, then restart on the same data dir", () => {
  let registry: RegistryHandle;
  let proxy: FaultyProxy;
  let dataDir: string;
  let first: Daemon | undefined;
  let second: Daemon | undefined;
  let third: Daemon | undefined;

  // What was in flight at the kill, and what had been committed before it.
  const running: string[] = [];
  let networked = "";
  let writer = "";
  let importOp = "";
  let committedImage = "";
  let committedOp = "";
  let sandboxIds: string[] = [];

  /** The run scratch pool (loop-mounted ext4 images, runtime/scratch): `<pid>.<n>` per daemon. */
  const SCRATCH = ".scratch";
  const state = () => ({
    mounts: mountsUnder([dataDir]),
    runs: join(dataDir, "runs"),
    staging: join(dataDir, "staging"),
    markers: join(dataDir, "runtime", "sandboxes"),
    crunState: join(dataDir, "runtime", "crun"),
  });

  beforeAll(async () => {
    const fx = await fixtures();
    registry = await startRegistry({ seedFrom: fx.registryData });
    proxy = await startFaultyProxy({ upstream: registry.url });
    dataDir = await mkdtemp(join(tmpdir(), "contree-crash-"));
  });

  afterAll(async () => {
    for (const d of [third, second, first]) {
      if (d === undefined) continue;
      d.proc.kill("SIGKILL");
      await d.exited;
    }
    // Whatever the assertions found, nothing of this data dir may outlive the test.
    if (dataDir !== undefined) {
      await reclaim({ stateDir: join(dataDir, "runtime"), mountRoots: [dataDir] }).catch(() => undefined);
      for (const m of mountsUnder([dataDir])) await run("umount", ["-l", m]).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
    await proxy?.stop();
    await registry?.stop();
  });

  it("a SIGKILL mid-run leaves mounts, sandboxes, cgroups, netns, run dirs and staging behind", async () => {
    first = await startDaemon({ dataDir, args: ["--runtime", "oci"], env: { CONTREE_LOG_LEVEL: "warn" } });
    const api = client(first);
    const opStatus = async (id: string) =>
      ((await (await api(`/v1/operations/${id}`)).json()) as OpDoc).status;
    const waitOp = (id: string) => waitTerminal(api, id);
    const spawn = async (body: Record<string, unknown>) => {
      const r = await api("/v1/instances", {
        method: "POST",
        json: { image: "tag:busybox:latest", timeout: 3600, ...body },
      });
      const j = (await r.json()) as { uuid: string; error?: string };
      expect(r.status, j.error).toBe(202);
      return j.uuid;
    };

    const imp = await api("/v1/images/import", {
      method: "POST",
      json: {
        registry: { url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}` },
        tag: "busybox:latest",
      },
    });
    const base = await waitOp(((await imp.json()) as { uuid: string }).uuid);
    expect(base.status, String(base.error)).toBe("SUCCESS");

    // Committed before the crash: must survive it untouched.
    committedOp = await spawn({ command: "echo kept > /kept.txt", shell: true });
    const done = await waitOp(committedOp);
    expect(done.status, String(done.error)).toBe("SUCCESS");
    committedImage = String(done.result_image_uuid);
    expect(committedImage).toMatch(/^[0-9a-f-]{36}$/);

    for (let i = 0; i < 3; i++) running.push(await spawn({ command: SLEEP, shell: true }));
    writer = await spawn({
      command: `mkdir -p /data && echo half > /data/a && head -c 100000 /dev/zero > /data/b && touch /written && ${SLEEP}`,
      shell: true,
    });
    running.push(writer);
    networked = await spawn({ command: SLEEP, shell: true, networking: { enabled: true } });
    running.push(networked);

    // An import whose last layer stalls after a few bytes: it sits half-applied in staging at the kill.
    const manifest = (await (
      await fetch(`${registry.url}/v2/fixtures/features/manifests/latest`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      })
    ).json()) as { layers: Array<{ digest: string }> };
    const lastLayer = manifest.layers[manifest.layers.length - 1]?.digest as string;
    proxy.addFault({
      match: (req) => (req.url ?? "").endsWith(`/blobs/${lastLayer}`),
      fault: { kind: "stall", afterBytes: 100 },
    });
    const stalled = await api("/v1/images/import", {
      method: "POST",
      json: {
        registry: { url: `docker://${proxy.host}/${FIXTURE_IMAGES.features}` },
        tag: "features:latest",
        timeout: 3600,
      },
    });
    expect(stalled.status).toBe(202);
    importOp = ((await stalled.json()) as { uuid: string }).uuid;

    // Every sandbox started (its spawn event is logged after the runtime launched it).
    for (const id of running) {
      await waitFor(`spawn of ${id}`, async () => {
        const s = await openEvents(first as Daemon, id);
        const evs = await s.done(30_000);
        return evs.some((e) => e.type === "spawn");
      });
    }
    // Runs under the default cap write into a loop-mounted scratch filesystem of the pool.
    const writerUpper = () =>
      readdirSync(join(dataDir, "runs", SCRATCH))
        .map((n) => join(dataDir, "runs", SCRATCH, n, "upper"))
        .find((u) => existsSync(join(u, "written")));
    await waitFor("the writer's files", () => writerUpper() !== undefined);
    await waitFor(
      "a staged layer of the import",
      async () => (await opStatus(importOp)) === "EXECUTING" && (await ls(state().staging)).length > 0,
    );
    for (const id of [...running, importOp]) expect(await opStatus(id)).toBe("EXECUTING");

    sandboxIds = await ls(state().markers);
    expect(sandboxIds).toHaveLength(running.length);

    process.kill(first.pid, "SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");

    // The wreckage: a mounted rootfs per run, live containers with their processes, cgroups, the netns.
    const s = state();
    const firstPid = first.pid;
    const scratchMounts = s.mounts.filter((m) => m.startsWith(join(s.runs, SCRATCH, `${firstPid}.`)));
    expect(scratchMounts.length).toBeGreaterThanOrEqual(running.length);
    expect(s.mounts.filter((m) => !scratchMounts.includes(m)).sort()).toEqual(
      running.map((id) => join(s.runs, id, "rootfs")).sort(),
    );
    expect(await ls(s.runs)).toEqual([SCRATCH, ...running].sort());
    expect(existsSync(join(writerUpper() as string, "data", "b"))).toBe(true);
    expect((await ls(s.staging)).length).toBeGreaterThan(0);
    expect((await ls(s.crunState)).filter((n) => n.startsWith("ctr-"))).toEqual(
      sandboxIds.map((id) => `ctr-${id}`),
    );
    for (const id of sandboxIds) {
      expect(cgroupDirs(id).length, `cgroups of ${id}`).toBeGreaterThan(0);
      expect(processesIn(id).length, `processes of ${id}`).toBeGreaterThan(0);
    }
    const netns = await ls("/run/netns");
    expect(sandboxIds.filter((id) => netns.includes(`ctr-${id}`))).toHaveLength(1);
  }, 300_000);

  it("a restart reclaims every mount, container, cgroup, netns, run dir and staged layer", async () => {
    expect(sandboxIds.length, "the crash step did not get far").toBeGreaterThan(0);
    second = await startDaemon({ dataDir, args: ["--runtime", "oci"], env: { CONTREE_LOG_LEVEL: "warn" } });
    const s = state();
    // Only the new daemon's own scratch pool is mounted (warmed at start-up).
    const secondPid = second.pid;
    const own = join(s.runs, SCRATCH, `${secondPid}.`);
    expect(s.mounts.filter((m) => !m.startsWith(own))).toEqual([]);
    expect((await ls(s.runs)).filter((n) => n !== SCRATCH)).toEqual([]);
    expect((await ls(join(s.runs, SCRATCH))).filter((n) => !n.startsWith(`${secondPid}.`))).toEqual([]);
    expect(await ls(s.staging)).toEqual([]);
    expect(await ls(s.markers)).toEqual([]);
    expect((await ls(s.crunState)).filter((n) => n.startsWith("ctr-"))).toEqual([]);
    const netns = await ls("/run/netns");
    for (const id of sandboxIds) {
      expect(cgroupDirs(id), `cgroups of ${id}`).toEqual([]);
      expect(processesIn(id), `processes of ${id}`).toEqual([]);
      expect(netns).not.toContain(`ctr-${id}`);
    }
    // No runtime process of the dead daemon survives (the new daemon's own argv names the data dir).
    // (Nor its children: it may be making its scratch pool's first filesystem, mkfs on the data dir.)
    const { stdout } = await run("ps", ["-eo", "pid=,ppid=,args="]);
    const strays = stdout
      .split("\n")
      .filter((l) => l.includes(dataDir) && !l.includes("ps -eo"))
      .filter((l) => {
        const [pid, ppid] = l.trim().split(/\s+/).map(Number);
        return pid !== second?.pid && ppid !== second?.pid;
      });
    expect(strays).toEqual([]);
  }, 120_000);

  it("every operation in flight is FAILED (server restarted) and its event stream ends with completion", async () => {
    const d = second as Daemon;
    const api = client(d);
    for (const id of [...running, importOp]) {
      const doc = (await (await api(`/v1/operations/${id}`)).json()) as OpDoc;
      expect(doc.status, id).toBe("FAILED");
      expect(doc.error).toMatch(/server restarted/);
      const replay = await (await openEvents(d, id)).done(30_000);
      const last = replay[replay.length - 1];
      expect(last?.type).toBe("completion");
      expect(last?.data).toMatchObject({ status: "FAILED", error: doc.error });
      expect(replay.filter((e) => e.type === "completion")).toHaveLength(1);
      // A follower of a finished operation gets the whole log and the stream closes.
      const follow = await (await openEvents(d, id, { follow: true })).done(15_000);
      expect(follow.map((e) => e.id)).toEqual(replay.map((e) => e.id));
    }
  }, 120_000);

  it("no image or layer row points to a missing or half-written layer, and no layer dir lacks a row", async () => {
    const db = new Database(join(dataDir, "metadata.db"), { readonly: true, fileMustExist: true });
    try {
      const layersDir = join(dataDir, "layers");
      const images = db.prepare("SELECT id, mount_chain FROM images").all() as Array<{
        id: string;
        mount_chain: string;
      }>;
      expect(images.length).toBeGreaterThanOrEqual(2);
      for (const img of images) {
        for (const layer of JSON.parse(img.mount_chain) as string[]) {
          expect(existsSync(join(layersDir, layer)), `layer ${layer} of image ${img.id}`).toBe(true);
        }
      }
      const rows = (db.prepare("SELECT id FROM layers").all() as Array<{ id: string }>)
        .map((r) => r.id)
        .sort();
      expect(await ls(layersDir)).toEqual(rows);
      // The half-imported features image never became visible.
      const tags = db.prepare("SELECT tag FROM tags").all() as Array<{ tag: string }>;
      expect(tags.map((t) => t.tag)).not.toContain("features:latest");
    } finally {
      db.close();
    }
  });

  it("new runs and imports work after the restart, from old and new images", async () => {
    const d = second as Daemon;
    const api = client(d);
    const waitOp = (id: string) => waitTerminal(api, id);
    const runOp = async (body: Record<string, unknown>) => {
      const r = await api("/v1/instances", { method: "POST", json: { shell: true, ...body } });
      expect(r.status).toBe(202);
      return waitOp(((await r.json()) as { uuid: string }).uuid);
    };

    const fromOld = await runOp({ command: "cat /kept.txt && echo new > /new.txt", image: committedImage });
    expect(fromOld.status, String(fromOld.error)).toBe("SUCCESS");
    expect(decode(fromOld.metadata?.result?.stdout)).toBe("kept\n");
    const child = String(fromOld.result_image_uuid);
    const again = await runOp({ command: "cat /kept.txt /new.txt", image: child, disposable: true });
    expect(decode(again.metadata?.result?.stdout)).toBe("kept\nnew\n");

    const parallel = await Promise.all(
      [1, 2, 3].map((i) => runOp({ command: `echo ${i} > /f${i}`, image: "tag:busybox:latest" })),
    );
    for (const p of parallel) expect(p.status, String(p.error)).toBe("SUCCESS");

    // The import the crash interrupted goes through now (no throttle), reusing nothing half-made.
    proxy.clearFaults();
    const imp = await api("/v1/images/import", {
      method: "POST",
      json: {
        registry: { url: `docker://${proxy.host}/${FIXTURE_IMAGES.features}` },
        tag: "features:latest",
      },
    });
    const doc = await waitOp(((await imp.json()) as { uuid: string }).uuid);
    expect(doc.status, String(doc.error)).toBe("SUCCESS");

    // A clean stop after all that leaves nothing mounted.
    await d.stop("SIGTERM");
    expect(mountsUnder([dataDir])).toEqual([]);
    expect(await ls(join(dataDir, "runs"))).toEqual([]);
  }, 300_000);

  // Since the terminal status and the completion event are written in one transaction the gap
  // cannot happen any more; a data dir written by an older server may still hold such an
  // operation. Its status stands, nothing is repaired behind the client's back, and a follower's
  // stream still ends (it used to be held open until a completion that never came).
  it("an operation recorded terminal without a completion event (an older server's crash gap) still ends its event stream", async () => {
    expect(committedOp).not.toBe("");
    const db = new Database(join(dataDir, "metadata.db"), { fileMustExist: true });
    try {
      const removed = db
        .prepare("DELETE FROM operation_events WHERE operation_id = ? AND type = 'completion'")
        .run(committedOp);
      expect(removed.changes).toBe(1);
    } finally {
      db.close();
    }
    third = await startDaemon({ dataDir, args: ["--runtime", "oci"], env: { CONTREE_LOG_LEVEL: "warn" } });
    const op = (await (await client(third)(`/v1/operations/${committedOp}`)).json()) as {
      status: string;
      result: { image: string | null } | null;
    };
    expect(op.status).toBe("SUCCESS");
    expect(op.result?.image).toBe(committedImage);
    const events = await (await openEvents(third, committedOp, { follow: true })).done(15_000);
    expect(events.length).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === "completion")).toHaveLength(0);
    expect(events.some((e) => e.type === "exit")).toBe(true);
    await third.stop("SIGTERM");
  }, 180_000);
});
