/**
 * Output kept in the output store across a crash: a run that has written 3 MB of binary output
 * (stored apart, referred to by its events) is in flight when the daemon gets SIGKILL. After a
 * restart on the same data dir the operation is FAILED and its event log still replays exactly
 * the bytes it had before the crash; the output of an operation the database does not know (as
 * a crash between storing a large stdin and inserting its row leaves) is removed at start-up.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountsUnder, reclaim } from "../../src/runtime/reclaim.js";
import { decodeRepr, openEvents } from "../events/sse-client.js";
import { type Daemon, startDaemon } from "../harness/daemon.js";
import { FIXTURE_IMAGES, fixtures } from "../harness/fixtures.js";
import { waitOperation } from "../harness/in-process.js";
import { type RegistryHandle, startRegistry } from "../harness/registry.js";

const run = promisify(execFile);
const BYTES = 3_000_000;

function client(d: Daemon) {
  return async (path: string, json?: unknown): Promise<Response> =>
    fetch(`${d.url}${path}`, {
      method: json === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${d.token}`,
        ...(json === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
}

async function stdoutOf(d: Daemon, id: string): Promise<{ bytes: Buffer; types: string[] }> {
  const s = await openEvents({ url: d.url, token: d.token }, id, {});
  const events = await s.done(120_000);
  const bytes = Buffer.concat(events.filter((e) => e.type === "stdout").map((e) => decodeRepr(e.data)));
  return { bytes, types: events.map((e) => e.type) };
}

describe("stored output across a daemon crash", () => {
  let registry: RegistryHandle;
  let dataDir: string;
  let first: Daemon | undefined;
  let second: Daemon | undefined;
  let opId = "";
  let before: Buffer = Buffer.alloc(0);
  const orphan = randomUUID();

  beforeAll(async () => {
    registry = await startRegistry({ seedFrom: (await fixtures()).registryData });
    dataDir = await mkdtemp(join(tmpdir(), "contree-output-crash-"));
  });

  afterAll(async () => {
    for (const d of [second, first]) {
      if (d === undefined) continue;
      d.proc.kill("SIGKILL");
      await d.exited;
    }
    if (dataDir !== undefined) {
      await reclaim({ stateDir: join(dataDir, "runtime"), mountRoots: [dataDir] }).catch(() => undefined);
      for (const m of mountsUnder([dataDir])) await run("umount", ["-l", m]).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
    await registry?.stop();
  });

  it("a run with stored output is in flight at SIGKILL", { timeout: 300_000 }, async () => {
    first = await startDaemon({ dataDir, env: { CONTREE_RUNTIME: "oci" }, readyTimeoutMs: 180_000 });
    const api = client(first);
    const imp = await api("/v1/images/import", {
      registry: { url: `docker://${registry.host}/${FIXTURE_IMAGES.busybox}` },
      tag: "busybox:latest",
    });
    const impId = ((await imp.json()) as { uuid: string }).uuid;
    const doc = (await waitOperation((path) => api(path), impId, 180_000)) as {
      status: string;
      error: string;
    };
    expect(doc.status, doc.error).toBe("SUCCESS");
    const sp = await api("/v1/instances", {
      image: "tag:busybox:latest",
      command: `head -c ${BYTES} /dev/urandom; sleep 600`,
      shell: true,
      disposable: true,
      timeout: 900,
      truncate_output_at: 16 * 1024 * 1024,
    });
    opId = ((await sp.json()) as { uuid: string }).uuid;
    // Wait until every byte is in the log (the process then sleeps).
    const follow = await openEvents({ url: first.url, token: first.token }, opId, { follow: true });
    await follow.until(
      (s) =>
        s
          .events()
          .filter((e) => e.type === "stdout")
          .reduce((n, e) => n + decodeRepr(e.data).length, 0) >= BYTES,
      120_000,
    );
    follow.close();
    before = (await stdoutOf(first, opId)).bytes;
    expect(before.length).toBe(BYTES);
    expect(existsSync(join(dataDir, "outputs", opId, "1.stdout"))).toBe(true);
    first.proc.kill("SIGKILL");
    await first.exited;
    // What a crash between storing a spawn's large stdin and inserting its row leaves.
    await mkdir(join(dataDir, "outputs", orphan), { recursive: true });
    await writeFile(join(dataDir, "outputs", orphan, "1.input"), "x".repeat(100_000));
  });

  it("after a restart the operation is FAILED, its log replays the same bytes, orphaned output is gone", {
    timeout: 300_000,
  }, async () => {
    expect(opId).not.toBe("");
    second = await startDaemon({ dataDir, env: { CONTREE_RUNTIME: "oci" }, readyTimeoutMs: 180_000 });
    const doc = (await (await client(second)(`/v1/operations/${opId}`)).json()) as { status: string };
    expect(doc.status).toBe("FAILED");
    const after = await stdoutOf(second, opId);
    expect(after.types.at(-1)).toBe("completion");
    expect(after.bytes.equals(before)).toBe(true);
    expect(existsSync(join(dataDir, "outputs", orphan))).toBe(false);
    expect(existsSync(join(dataDir, "outputs", opId))).toBe(true);
  });
});
