/**
 * A full data filesystem (issue 10 §3), on a real small loop-mounted ext4 used as the data dir.
 * Before the fix, other tenants' uploads, spawns and tag changes got 500s, and the run that
 * filled the disk lost its stdout and exit code ("could not record the result image", with
 * "cannot rollback - no transaction is active" logged). Now: new writes get 507, reads keep
 * working, and a finished run's result is always recorded (without an image when its diff
 * could not be stored, saying so).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, statfsSync } from "node:fs";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isStorageFull } from "../../src/core/errors.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { tenant } from "../harness/tenant.js";

const MiB = 1024 * 1024;
const MIN_FREE = 64 * MiB;
const RESERVE = 16 * MiB;

type Op = Record<string, unknown> & {
  metadata: {
    result: {
      state: { exit_code: number };
      stdout: { value: string; encoding?: string };
      stderr: { value: string; encoding?: string };
      resources: Record<string, unknown>;
    };
  };
};
const decode = (s: { value: string; encoding?: string }) =>
  s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;

describe("a full data filesystem", () => {
  let root: string;
  let data: string;
  let mounted = false;
  let t: TestServer;
  let reg: RegistryHandle;
  let attacker: Awaited<ReturnType<typeof tenant>>;
  let fillers = 0;

  const free = () => {
    const s = statfsSync(data);
    return s.bavail * s.bsize;
  };
  /** Takes all but `leave` bytes of the data filesystem (preallocated, nothing written). */
  const fill = (leave: number) => {
    const n = Math.floor((free() - leave) / 4096) * 4096;
    if (n > 0) execFileSync("fallocate", ["-l", String(n), join(data, `filler-${fillers++}`)]);
  };
  const unfill = async () => {
    for (const f of readdirSync(data).filter((n) => n.startsWith("filler-"))) await rm(join(data, f));
  };
  const waitOp = async (id: string) => (await waitOperation(attacker, id, 300_000)) as Op;
  async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }
  const spawn = (body: Record<string, unknown>) =>
    attacker.api("/v1/instances", {
      method: "POST",
      json: { image: "tag:busybox:latest", shell: true, ...body },
    });
  const upload = () =>
    attacker.api("/v1/files", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: Buffer.from(`payload ${Math.random()}`),
    });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "contree-diskfull-"));
    data = join(root, "data");
    mkdirSync(data);
    const img = join(root, "data.img");
    await writeFile(img, "");
    await truncate(img, 700 * MiB);
    execFileSync("mkfs.ext4", ["-q", "-F", img]);
    // mount(8) sets the loop device up with autoclear: it goes with the unmount (or our namespace).
    execFileSync("mount", ["-o", "loop", img, data]);
    mounted = true;
    t = await startTestServer(
      { runtime: "oci", dataDir: data },
      { CONTREE_MIN_FREE_BYTES: String(MIN_FREE), CONTREE_STORAGE_RESERVE_BYTES: String(RESERVE) },
    );
    ({ registry: reg } = await importBusybox(t));
    attacker = await tenant(t);
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await reg?.stop();
    if (mounted) {
      try {
        execFileSync("umount", [data]);
      } catch {
        execFileSync("umount", ["-l", data]);
      }
    }
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("a run whose diff does not fit keeps its output, exit code and resources, without an image", async () => {
    fill(150 * MiB);
    try {
      // The cap (512 MiB, on a tmpfs) lets the run write more than the data filesystem can take.
      const r = await spawn({
        command:
          "dd if=/dev/zero of=/big bs=1M count=300 2>/dev/null && echo wrote; echo out-marker; echo err-marker >&2; exit 7",
        resources_limits: { max_layer_bytes: 512 * MiB },
      });
      const j = (await r.json()) as { uuid: string; error?: string };
      expect(r.status, j.error).toBe(202);
      const op = await waitOp(j.uuid);
      expect(op["status"]).toBe("SUCCESS");
      expect(op.metadata.result.state.exit_code).toBe(7);
      expect(decode(op.metadata.result.stdout)).toBe("wrote\nout-marker\n");
      expect(decode(op.metadata.result.stderr)).toBe("err-marker\n");
      expect(op.metadata.result.resources).toBeTruthy();
      expect(op["result_image_uuid"] ?? null).toBeNull();
      expect(String(op["error"])).toContain("out of storage space (no image was made)");
      // The half-copied layer is gone.
      expect(readdirSync(join(data, "staging"))).toEqual([]);
    } finally {
      await unfill();
    }
  }, 120_000);

  it("new writes get 507, reads keep working, a run in flight records its result", async () => {
    const started = await spawn({
      command: "read line; echo late; echo x > /f",
      resources_limits: { max_layer_bytes: 64 * MiB },
      stdin: { value: "", close: false },
    });
    const inflight = ((await started.json()) as { uuid: string }).uuid;
    await until("the run to execute", async () => {
      const op = (await (await attacker.api(`/v1/operations/${inflight}`)).json()) as Op;
      return op["status"] === "EXECUTING";
    });
    try {
      fill(0);
      // statfs is cached for a fraction of a second: wait for the guard to see the disk full.
      await until("uploads to be refused", async () => (await upload()).status === 507);
      const refused = await upload();
      expect(refused.status).toBe(507);
      expect(await refused.json()).toEqual({
        error: "the server is out of storage space; try again later",
        status: 507,
      });
      expect((await spawn({ command: "true" })).status).toBe(507);
      const listed = (await (await attacker.api("/v1/images?tag=busybox:latest")).json()) as {
        images: Array<{ uuid: string }>;
      };
      const imageId = listed.images[0]?.uuid as string;
      expect(imageId).toBeTruthy();
      const tag = await attacker.api(`/v1/images/${imageId}/tag`, {
        method: "PATCH",
        json: { tag: "newtag" },
      });
      expect(tag.status).toBe(507);
      const untag = await attacker.api(`/v1/images/${imageId}/tag`, {
        method: "DELETE",
        json: { tag: "busybox:latest" },
      });
      expect(untag.status).toBe(507);
      const imp = await attacker.api("/v1/images/import", {
        method: "POST",
        json: { registry: { url: `docker://${reg.host}/whatever:latest` } },
      });
      expect(imp.status).toBe(507);
      // Reads are untouched.
      expect((await attacker.api("/v1/whoami")).status).toBe(200);
      expect((await attacker.api("/v1/images")).status).toBe(200);
      expect((await attacker.api(`/v1/inspect/${imageId}/list?path=/`)).status).toBe(200);
      expect((await attacker.api(`/v1/operations/${inflight}`)).status).toBe(200);

      // An exec in a running sandbox is a new write too: refused while full.
      const exec = await attacker.api(`/v1/operations/${inflight}/subprocesses`, {
        method: "POST",
        json: { command: "true" },
      });
      expect(exec.status).toBe(507);
      // The run in flight finishes on the full disk: its result is recorded.
      const go = await attacker.api(`/v1/operations/${inflight}/subprocesses/1/stdin`, {
        method: "POST",
        json: { value: "go\n", close: true },
      });
      expect(go.status).toBe(202);
      const op = await waitOp(inflight);
      expect(op["status"]).toBe("SUCCESS");
      expect(op.metadata.result.state.exit_code).toBe(0);
      expect(decode(op.metadata.result.stdout)).toBe("late\n");
      // The reserve the guard gave back makes room for the small diff; were it too small, the
      // result would still be here, saying that no image was made.
      if (op["result_image_uuid"] === null) expect(String(op["error"])).toContain("no image was made");
    } finally {
      await unfill();
    }
    await until("uploads to be accepted again", async () => (await upload()).status === 201);
  }, 120_000);

  it("a SQLite transaction on a full disk fails with SQLite's own error, and the store stays usable", async () => {
    const store = SqliteMetadataStore.open(join(data, "probe.db"));
    try {
      const project = await store.projects.create("p");
      fill(0);
      await expect(
        store.transaction(async (tx) => {
          for (let i = 0; i < 100_000; i++) await tx.projects.create(`x${i}-${"y".repeat(4000)}`);
        }),
      ).rejects.toSatisfy((err: unknown) => {
        expect(String((err as Error).message)).not.toContain("cannot rollback");
        expect(isStorageFull(err)).toBe(true);
        return true;
      });
      expect((await store.projects.findById(project.id))?.name).toBe("p");
      await unfill();
      await store.projects.create("after");
      expect((await store.projects.findByName("after"))?.name).toBe("after");
    } finally {
      await unfill();
      await store.close();
    }
  }, 120_000);
});
