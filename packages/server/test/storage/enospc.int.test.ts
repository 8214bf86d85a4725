/**
 * ENOSPC never corrupts committed data (issue 12 §4). The data dir is a small loop-mounted
 * ext4 with the free-space guard off (CONTREE_MIN_FREE_BYTES=0, no reserve), so runs, uploads
 * and an import really run out of space mid-write. Then: every image committed before still
 * reads through inspect with its exact content, the database passes SQLite's integrity and
 * foreign key checks, the failed import left nothing half-visible, and once space is freed
 * (a ballast file deleted) every image runs, new writes work and the import succeeds.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statfsSync } from "node:fs";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

const MiB = 1024 * 1024;
const RUN_BYTES = 12 * MiB;
const UPLOAD_BYTES = 6 * MiB;
const BALLAST = 48 * MiB;

type Op = Record<string, unknown> & {
  status: string;
  error: string | null;
  result_image_uuid: string | null;
  metadata: { result?: { state: { exit_code: number }; stdout: { value: string; encoding?: string } } };
};
const stdoutOf = (op: Op) => {
  const s = op.metadata.result?.stdout;
  if (!s) return "";
  return s.encoding === "base64" ? Buffer.from(s.value, "base64").toString() : s.value;
};
const STORAGE_ERROR = /out of storage space/;

describe("ENOSPC on the data filesystem", () => {
  let root: string;
  let data: string;
  let mounted = false;
  let t: TestServer;
  let reg: RegistryHandle;

  const spawn = (image: string, command: string, disposable = false) =>
    t.api("/v1/instances", {
      method: "POST",
      json: { image, shell: true, command, disposable, resources_limits: { max_layer_bytes: 64 * MiB } },
    });
  const importImage = async (ref: string): Promise<Op | number> => {
    const r = await t.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/${ref}` } },
    });
    if (r.status !== 202) return r.status;
    return (await waitOperation(t, ((await r.json()) as { uuid: string }).uuid, 300_000)) as Op;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "contree-enospc-"));
    data = join(root, "data");
    mkdirSync(data);
    const img = join(root, "data.img");
    await writeFile(img, "");
    await truncate(img, 320 * MiB);
    // No blocks reserved for root (the server is root here): full means full.
    execFileSync("mkfs.ext4", ["-q", "-F", "-m", "0", img]);
    // mount(8) sets the loop device up with autoclear: it goes with the unmount (or our namespace).
    execFileSync("mount", ["-o", "loop", img, data]);
    mounted = true;
    t = await startTestServer(
      { runtime: "oci", dataDir: data },
      { CONTREE_MIN_FREE_BYTES: "0", CONTREE_STORAGE_RESERVE_BYTES: "0" },
    );
    reg = await startRegistry({ seedFrom: (await fixtures()).registryData });
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

  it("fills to ENOSPC with runs and uploads; committed images stay intact and the server recovers", async () => {
    const base = await importImage(FIXTURE_IMAGES.busybox);
    expect(typeof base === "object" && base.status).toBe("SUCCESS");
    const baseId = String((base as Op).result_image_uuid);
    // Space to give back at the end (an operator deleting something).
    execFileSync("fallocate", ["-l", String(BALLAST), join(data, "ballast")]);

    /** image id → the sha256 of every file the chain's runs wrote, by name. */
    const committed = new Map<string, Map<string, string>>();
    let top = { id: baseId, files: new Map<string, string>() };
    const failures: string[] = [];
    for (let i = 0; i < 60 && failures.length < 3; i++) {
      // A run writing random bytes, then an upload: alternately they meet the full disk.
      const r = await spawn(
        top.id,
        `{ head -c ${RUN_BYTES} /dev/urandom > /f${i} && sha256sum /f${i} | cut -d' ' -f1; } 2>&1`,
      );
      if (r.status !== 202) {
        expect(r.status, await r.text()).toBe(507);
        failures.push(`spawn ${r.status}`);
      } else {
        const op = (await waitOperation(t, ((await r.json()) as { uuid: string }).uuid, 300_000)) as Op;
        if (
          op.status === "SUCCESS" &&
          op.result_image_uuid !== null &&
          op.metadata.result?.state.exit_code === 0
        ) {
          const files = new Map(top.files).set(`f${i}`, stdoutOf(op).trim());
          top = { id: op.result_image_uuid, files };
          committed.set(top.id, files);
        } else {
          // The run's own write or its commit ran out of space: said so, never a silent loss.
          expect(`${op.error} ${stdoutOf(op)}`).toMatch(/out of storage space|No space left on device/);
          failures.push(`run ${op.status}`);
        }
      }
      const up = await t.api("/v1/files", {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: Buffer.alloc(UPLOAD_BYTES, i),
      });
      if (up.status !== 201) {
        expect(up.status).toBe(507);
        expect(((await up.json()) as { error: string }).error).toMatch(STORAGE_ERROR);
        failures.push("upload 507");
      }
    }
    expect(failures.length, "the data filesystem never filled").toBeGreaterThan(0);
    expect(committed.size).toBeGreaterThan(3);
    // What is left below one more run or upload is taken too, so the import below meets ENOSPC.
    const left = statfsSync(data);
    const rest = Math.floor((left.bavail * left.bsize) / 4096) * 4096;
    expect(rest).toBeLessThan(RUN_BYTES + UPLOAD_BYTES);
    // Allocating all of `rest` in one file can itself fail (the file's extent blocks count too,
    // and the server may write meanwhile): take it in halving pieces until not a block is left.
    for (let size = rest, n = 0; size >= 4096; n++) {
      try {
        execFileSync("fallocate", ["-l", String(size), join(data, `filler-${n}`)], { stdio: "ignore" });
      } catch {
        rmSync(join(data, `filler-${n}`), { force: true });
        size = Math.floor(size / 2 / 4096) * 4096;
      }
    }

    // An import of an image whose layers are new fails cleanly: no image, no staging left.
    const imp = await importImage(FIXTURE_IMAGES.features);
    if (typeof imp === "number") expect(imp).toBe(507);
    else {
      expect(imp.status).toBe("FAILED");
      expect(String(imp.error)).toMatch(STORAGE_ERROR);
    }
    const featuresRows = await t.server.store.db
      .selectFrom("images")
      .select("id")
      .where("source", "like", "%features%")
      .execute();
    expect(featuresRows).toEqual([]);
    expect(readdirSync(join(data, "staging"))).toEqual([]);

    // The database is intact (checked from a second connection, as an operator would).
    const db = new BetterSqlite3(join(data, "metadata.db"), { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      expect(db.pragma("foreign_key_check")).toEqual([]);
    } finally {
      db.close();
    }

    // On the full disk every committed image still reads, byte for byte.
    for (const [id, files] of committed) {
      const ls = await t.api(`/v1/inspect/${id}/list?path=/`);
      expect(ls.status).toBe(200);
      const names = JSON.stringify(await ls.json());
      for (const name of files.keys()) expect(names).toContain(`"${name}"`);
    }
    const [lastName, lastSum] = [...top.files].at(-1) as [string, string];
    const dl = await t.api(`/v1/inspect/${top.id}/download?path=/${lastName}`);
    expect(dl.status).toBe(200);
    const { createHash } = await import("node:crypto");
    expect(
      createHash("sha256")
        .update(Buffer.from(await dl.arrayBuffer()))
        .digest("hex"),
    ).toBe(lastSum);

    // Space comes back: every image runs and its files are what was written.
    await rm(join(data, "ballast"));
    for (const f of readdirSync(data)) if (f.startsWith("filler-")) await rm(join(data, f), { force: true });
    for (const [id, files] of committed) {
      const r = await spawn(id, `cd / && sha256sum ${[...files.keys()].join(" ")}`, true);
      expect(r.status).toBe(202);
      const op = (await waitOperation(t, ((await r.json()) as { uuid: string }).uuid, 300_000)) as Op;
      expect(op.status, String(op.error)).toBe("SUCCESS");
      const sums = new Map(
        stdoutOf(op)
          .trim()
          .split("\n")
          .map((l) => {
            const [sum, name] = l.split(/\s+/);
            return [String(name), String(sum)] as const;
          }),
      );
      expect(sums).toEqual(files);
    }
    // New writes work again: an upload, a run that commits, the import that failed.
    const up = await t.api("/v1/files", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: Buffer.from("after"),
    });
    expect(up.status).toBe(201);
    const r = await spawn(top.id, "echo after > /after");
    const op = (await waitOperation(t, ((await r.json()) as { uuid: string }).uuid, 300_000)) as Op;
    expect(op.status, String(op.error)).toBe("SUCCESS");
    expect(op.result_image_uuid).toBeTruthy();
    const again = await importImage(FIXTURE_IMAGES.features);
    expect(typeof again === "object" && again.status).toBe("SUCCESS");
  }, 900_000);
});
