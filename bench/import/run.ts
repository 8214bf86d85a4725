/**
 * Image import through the API against a raw pull of the same image from the same registry
 * (curl + sha256sum + GNU tar, bench/import/curl-pull.sh), measured in the same run.
 *
 *   npx tsx bench/import/run.ts                  # busybox, N=5
 *   DEBIAN=1 npx tsx bench/import/run.ts         # also Debian bookworm minbase (debootstrap, cached in /tmp)
 *   BENCH_RUNS=9 npx tsx bench/import/run.ts
 *
 * "cold" imports use a fresh server and data dir per run, so no layer is reused; "reuse" imports
 * the same image again into a server that already has it (manifest + config only). The API time
 * is POST /v1/images/import until the `completion` event arrives on the followed event stream.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { FIXTURE_IMAGES, fixtures } from "../../packages/server/test/harness/fixtures.js";
import { startTestServer, type TestServer } from "../../packages/server/test/harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../../packages/server/test/harness/registry.js";

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const ARCH = process.arch === "x64" ? "amd64" : process.arch;
const RUNS = Number(process.env["BENCH_RUNS"] ?? 5);
const DEBIAN = process.env["DEBIAN"] === "1";
// The fixture cache keys on DEBIAN too (make-fixtures.sh would debootstrap two more images);
// this bench builds its own Debian image, so the fixtures stay the ordinary ones.
delete process.env["DEBIAN"];
const DEBIAN_CACHE = process.env["DEBIAN_CACHE"] ?? join(tmpdir(), "contree-bench-debian");

interface Subject {
  name: string;
  repo: string;
  ref: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;

/** POST an import and wait for its completion event; returns wall ms and the server's own duration. */
async function timedImport(
  t: TestServer,
  reg: RegistryHandle,
  s: Subject,
): Promise<{ wall: number; server: number }> {
  const t0 = performance.now();
  const r = await t.api("/v1/images/import", {
    method: "POST",
    json: { registry: { url: `docker://${reg.host}/${s.repo}:${s.ref}` } },
  });
  if (r.status !== 202) throw new Error(`import answered ${r.status}: ${await r.text()}`);
  const { uuid } = (await r.json()) as { uuid: string };
  const ev = await t.api(`/v1/operations/${uuid}/events?follow=1`, {
    headers: { "accept-encoding": "identity" },
  });
  const reader = ev.body?.getReader();
  if (!reader) throw new Error("no event stream");
  const dec = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (value) text += dec.decode(value, { stream: true });
    const i = text.indexOf("event: completion");
    if (i >= 0 && text.indexOf("\n\n", i) >= 0) break;
    if (done) throw new Error(`event stream ended without completion: ${text.slice(-500)}`);
  }
  const wall = performance.now() - t0;
  await reader.cancel();
  const data = /event: completion\ndata: (.*)\n/.exec(text)?.[1] ?? "{}";
  const c = JSON.parse(data) as { data?: { status?: string; duration_ms?: number; error?: string } } & Record<
    string,
    unknown
  >;
  const body = (c.data ?? c) as { status?: string; duration_ms?: number; error?: string };
  if (body.status !== "SUCCESS") throw new Error(`import of ${s.name} ended ${body.status}: ${body.error}`);
  return { wall, server: body.duration_ms ?? Number.NaN };
}

async function rawPull(reg: RegistryHandle, s: Subject): Promise<number> {
  const out = await mkdtemp(join(tmpdir(), "bench-import-raw-"));
  try {
    const t0 = performance.now();
    await run("bash", [join(HERE, "curl-pull.sh"), reg.url, s.repo, s.ref, out, ARCH], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return performance.now() - t0;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function compressedSize(reg: RegistryHandle, s: Subject): Promise<number> {
  const out = await mkdtemp(join(tmpdir(), "bench-import-size-"));
  try {
    await run("bash", [join(HERE, "curl-pull.sh"), reg.url, s.repo, s.ref, out, ARCH]);
    const { stdout } = await run("du", ["-sb", join(out, "blobs")]);
    return Number(stdout.split("\t")[0]);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log("fixtures and registry...");
  const fx = await fixtures();
  const reg = await startRegistry({ seedFrom: fx.registryData });
  const [bbRepo, bbRef] = FIXTURE_IMAGES.busybox.split(":") as [string, string];
  const subjects: Subject[] = [{ name: "busybox", repo: bbRepo, ref: bbRef }];
  try {
    if (DEBIAN) {
      console.log(`Debian bookworm minbase (cache ${DEBIAN_CACHE})...`);
      const t0 = performance.now();
      await run("bash", [join(HERE, "make-debian.sh"), DEBIAN_CACHE, reg.host], {
        maxBuffer: 64 * 1024 * 1024,
        timeout: 900_000,
      });
      console.log(`  built/pushed in ${ms(performance.now() - t0)}`);
      subjects.push({ name: "debian", repo: "bench/debian", ref: "bookworm" });
    }

    const raw = new Map<string, number[]>();
    const cold = new Map<string, { wall: number; server: number }[]>();
    const reuse = new Map<string, { wall: number; server: number }[]>();
    for (const s of subjects) {
      raw.set(s.name, []);
      cold.set(s.name, []);
      reuse.set(s.name, []);
    }

    console.log("warm-up (code paths, page cache)...");
    {
      const t = await startTestServer();
      try {
        for (const s of subjects) {
          await timedImport(t, reg, s);
          await rawPull(reg, s);
        }
      } finally {
        await t.close();
      }
    }

    for (let i = 0; i < RUNS; i++) {
      const t = await startTestServer();
      try {
        for (const s of subjects) {
          raw.get(s.name)?.push(await rawPull(reg, s));
          cold.get(s.name)?.push(await timedImport(t, reg, s));
        }
        if (i === RUNS - 1) {
          for (const s of subjects)
            for (let j = 0; j < RUNS; j++) reuse.get(s.name)?.push(await timedImport(t, reg, s));
        }
      } finally {
        await t.close();
      }
      console.log(`  run ${i + 1}/${RUNS} done`);
    }

    console.log(`\nimage import, median of ${RUNS} (registry on 127.0.0.1, data dir under ${tmpdir()})\n`);
    const rows = [["image", "blobs", "raw curl+tar", "API cold", "ratio", "server op", "API reuse"]];
    for (const s of subjects) {
      const r = median(raw.get(s.name) ?? []);
      const c = cold.get(s.name) ?? [];
      const cw = median(c.map((x) => x.wall));
      const cs = median(c.map((x) => x.server));
      const u = median((reuse.get(s.name) ?? []).map((x) => x.wall));
      const size = await compressedSize(reg, s);
      rows.push([
        s.name,
        `${(size / 1e6).toFixed(2)} MB`,
        ms(r),
        ms(cw),
        `${(cw / r).toFixed(2)}x`,
        ms(cs),
        ms(u),
      ]);
    }
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
    console.log("\nper run (ms):");
    for (const s of subjects) {
      console.log(`  ${s.name} raw:   ${(raw.get(s.name) ?? []).map((x) => x.toFixed(0)).join(" ")}`);
      console.log(`  ${s.name} cold:  ${(cold.get(s.name) ?? []).map((x) => x.wall.toFixed(0)).join(" ")}`);
      console.log(`  ${s.name} reuse: ${(reuse.get(s.name) ?? []).map((x) => x.wall.toFixed(0)).join(" ")}`);
    }
  } finally {
    await reg.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
