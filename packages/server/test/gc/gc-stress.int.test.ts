/**
 * GC racing everything that writes images, against a real server (real runtime, mounts, SQLite,
 * registry): runs forking from random images, a deep chain that keeps being flattened, imports
 * re-using layers of deleted imports, tag moves and deletes, while passes sweep back to back.
 * Then every surviving image is read through inspect and run. CONTREE_GC_STRESS_SECONDS sets
 * how long the race lasts (default 60).
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GcReport } from "../../src/snapshots/gc/gc-report.js";
import { importBusybox } from "../harness/busybox-image.js";
import { FIXTURE_IMAGES } from "../harness/fixtures.js";
import { startTestServer, type TestServer, waitOperation } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";

const SECONDS = Number(process.env["CONTREE_GC_STRESS_SECONDS"] ?? 60);

/** What an image holds under /w: file name → content (each run adds one). */
type Files = Record<string, string>;

describe("gc under concurrent runs, imports, flattens, tag moves and deletes", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let base: string;

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci", gc: { intervalSeconds: 0, graceSeconds: 0 } });
    ({ registry: reg, image: base } = await importBusybox(t));
  });
  afterAll(async () => {
    await t?.close();
    await reg?.stop();
  });

  async function run(
    image: string,
    command: string,
    gone?: () => boolean,
  ): Promise<Record<string, unknown> | undefined> {
    const r = await t.api("/v1/instances", { method: "POST", json: { command, shell: true, image } });
    // an image deleted (and collected) between the pick and the spawn
    if (r.status === 404 && gone?.()) return undefined;
    expect(r.status, `${image}: ${await r.clone().text()}`).toBe(202);
    const { uuid } = (await r.json()) as { uuid: string };
    return waitOperation(t, uuid, 120_000);
  }

  async function importImage(ref: string, tag: string): Promise<string> {
    const r = await t.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/${ref}` }, tag },
    });
    const { uuid } = (await r.json()) as { uuid: string };
    const op = await waitOperation(t, uuid, 120_000);
    expect(op["status"], String(op["error"])).toBe("SUCCESS");
    return String(op["result_image_uuid"]);
  }

  /** Deletion as the deletion branch stores it (a tombstone); never a tagged image. */
  async function remove(id: string): Promise<boolean> {
    const r = await t.server.store.db
      .updateTable("images")
      .set({ deleted_at: Date.now() })
      .where("id", "=", id)
      .where("deleted_at", "is", null)
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom("tags").select("tags.tag").whereRef("tags.image_id", "=", "images.id"))),
      )
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  it(
    "every surviving image reads and runs",
    async () => {
      const pool = new Map<string, Files>([[base, {}]]);
      const failures: string[] = [];
      const reports: GcReport[] = [];
      const deadline = Date.now() + SECONDS * 1000;
      let counter = 0;
      const pick = () => {
        const ids = [...pool.keys()];
        return ids[Math.floor(Math.random() * ids.length)] as string;
      };
      // Inputs of runs in flight: the mutator likes deleting these (the operation holds them).
      const inFlight: string[] = [];
      const spawnChild = async (from: string, files: Files): Promise<string | undefined> => {
        const name = `f${counter++}`;
        inFlight.push(from);
        const op = await run(
          from,
          `mkdir -p /w && sleep 0.2 && echo ${name} > /w/${name}`,
          () => !pool.has(from),
        ).finally(() => {
          inFlight.splice(inFlight.indexOf(from), 1);
        });
        if (op === undefined) return undefined;
        if (op["status"] !== "SUCCESS") {
          failures.push(`run from ${from}: ${String(op["status"])} ${String(op["error"])}`);
          return undefined;
        }
        const child = (op["result"] as { image: string | null } | null)?.image;
        if (typeof child !== "string") {
          failures.push(`run from ${from} gave no image: ${JSON.stringify(op).slice(0, 600)}`);
          return undefined;
        }
        pool.set(child, { ...files, [name]: name });
        return child;
      };

      const runner = async () => {
        while (Date.now() < deadline) {
          const from = pick();
          await spawnChild(from, pool.get(from) ?? {});
        }
      };
      // One long chain: past 24 layers the compactor flattens it while runs go on from it. The
      // mutator deletes its inner images, never its head (the chain grows from it).
      let chainHead = base;
      const chain = async () => {
        let files: Files = {};
        while (Date.now() < deadline) {
          const child = await spawnChild(chainHead, files);
          if (child === undefined) continue;
          chainHead = child;
          files = pool.get(child) ?? {};
        }
      };
      // Imports whose earlier copies were deleted: re-used layers race the sweep.
      const importer = async () => {
        let prev: string | undefined;
        for (let i = 0; Date.now() < deadline; i++) {
          const id = await importImage(FIXTURE_IMAGES.features, `feat:${i}`);
          await t.api(`/v1/images/${id}/tag?tag=${encodeURIComponent(`feat:${i}`)}`, { method: "DELETE" });
          if (prev !== undefined) pool.delete(prev);
          if (prev !== undefined) await remove(prev);
          pool.set(id, {});
          prev = id;
          await new Promise((r) => setTimeout(r, 500));
        }
      };
      // Tag moves and deletes in one loop, so a tag never lands on an image just deleted.
      const mutator = async () => {
        while (Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 150));
          const busy = inFlight.filter((id) => pool.has(id));
          const target =
            busy.length > 0 && Math.random() < 0.5
              ? (busy[Math.floor(Math.random() * busy.length)] as string)
              : pick();
          if (Math.random() < 0.3) {
            const r = await t.api(`/v1/images/${target}/tag`, {
              method: "PATCH",
              json: { tag: "best:latest" },
            });
            expect(r.status).toBe(200);
            continue;
          }
          if (pool.size < 12 || target === base || target === chainHead) continue;
          const files = pool.get(target) ?? {};
          pool.delete(target);
          // a tagged image is not deleted: it stays in the pool
          if (!(await remove(target))) pool.set(target, files);
        }
      };
      // At any moment every live image's chain has its rows and dirs (commits, imports and
      // flattens publish the dir before the row): checked after every pass.
      const broken: string[] = [];
      const checkLive = async () => {
        const rows = await t.server.store.db
          .selectFrom("images")
          .select(["id", "mount_chain"])
          .where("deleted_at", "is", null)
          .execute();
        const layerRows = new Set(await t.server.store.images.allLayerIds());
        for (const r of rows)
          for (const l of JSON.parse(r.mount_chain) as string[])
            if (!layerRows.has(l) || !existsSync(join(t.dataDir, "layers", l)))
              broken.push(`live image ${r.id} lost layer ${l}`);
      };
      const collector = async () => {
        while (Date.now() < deadline) {
          reports.push(await t.server.gc.run());
          await checkLive();
          await new Promise((r) => setTimeout(r, 100));
        }
      };

      await Promise.all([runner(), runner(), chain(), importer(), mutator(), collector()]);
      reports.push(await t.server.gc.run());
      const total = (k: keyof GcReport) => reports.reduce((s, r) => s + Number(r[k]), 0);
      process.stderr.write(
        `gc stress: ${SECONDS} s, ${counter} run attempts, ${reports.length} passes, ${total("layersRemoved")} layers and ${total("tombstonesRemoved")} image rows removed, ${pool.size} images survive\n`,
      );
      await checkLive();
      expect(broken).toEqual([]);
      expect(failures).toEqual([]);
      // the race did collect: deleted images' layers and rows went while it ran
      expect(total("layersRemoved")).toBeGreaterThan(0);
      expect(total("tombstonesRemoved")).toBeGreaterThan(0);
      expect(reports.length).toBeGreaterThan(5);
      // deep chains were flattened meanwhile
      const deep = await t.server.store.images.getAny(chainHead);
      expect(deep, "the chain's head is live").toBeDefined();
      expect(deep?.depth).toBeGreaterThan(24);
      expect(deep?.mountChain.length).toBeLessThan(deep?.depth ?? 0);

      // Every layer row has its dir and every dir its row.
      const rows = (await t.server.store.images.allLayerIds()).sort();
      expect((await readdir(join(t.dataDir, "layers"))).sort()).toEqual(rows);

      for (const [id, files] of pool) {
        const info = await t.api(`/v1/inspect/${id}/`);
        expect(info.status, `inspect ${id}`).toBe(200);
        const names = Object.keys(files).sort();
        if (names.length > 0) {
          const list = await t.api(`/v1/inspect/${id}/list?path=/w`);
          expect(list.status, `list /w of ${id}`).toBe(200);
          const listed = ((await list.json()) as { files: Array<{ path: string }> }).files.map(
            (f) => f.path.split("/").pop() as string,
          );
          expect(listed.sort()).toEqual(names);
          const one = names[names.length - 1] as string;
          const dl = await t.api(`/v1/inspect/${id}/download?path=/w/${one}`);
          expect(await dl.text()).toBe(`${files[one]}\n`);
        }
        const op = (await run(id, "cat /w/* 2>/dev/null | sort; ls /bin/sh >/dev/null")) as Record<
          string,
          unknown
        >;
        expect(op["status"], `run from ${id}: ${String(op["error"])}`).toBe("SUCCESS");
        const out = (op["metadata"] as { result: { stdout: { value: string } } }).result.stdout.value;
        expect(out).toBe(
          names
            .map((n) => files[n])
            .sort()
            .map((v) => `${v}\n`)
            .join(""),
        );
      }
      expect(existsSync(join(t.dataDir, "layers"))).toBe(true);
    },
    (SECONDS + 600) * 1000,
  );
});
