/**
 * Against real runs and imports (issue 11 §2): an operation's terminal status and its
 * `completion` event are committed together, so no reader — a second SQLite connection checking
 * inside every write of the server's store, a client polling the API, a follower — ever sees one
 * without the other, whichever way the operation ends.
 */
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OperationEventT } from "../contracts/client-models.js";
import { importBusybox } from "../harness/busybox-image.js";
import { startTestServer, type TestServer } from "../harness/in-process.js";
import type { RegistryHandle } from "../harness/registry.js";
import { probeEveryWrite } from "../operations/queue-harness.js";
import { openEvents, type SseStream } from "./sse-client.js";

const TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"];

describe("completion events of real operations", () => {
  let t: TestServer;
  let reg: RegistryHandle;
  let observer: BetterSqlite3.Database;
  let probe: ReturnType<typeof probeEveryWrite>;
  const streams: SseStream[] = [];

  beforeAll(async () => {
    t = await startTestServer({ runtime: "oci" });
    observer = new BetterSqlite3(join(t.dataDir, "metadata.db"), { readonly: true, fileMustExist: true });
    probe = probeEveryWrite(t.server.store, observer);
    // The import's own completion is watched too.
    ({ registry: reg } = await importBusybox(t));
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    probe?.stop();
    observer?.close();
    await t?.close();
    await reg?.stop();
  });

  const doc = async (id: string) =>
    (await (await t.api(`/v1/operations/${id}`)).json()) as { status: string; uuid: string };
  const events = async (id: string, follow: boolean) => {
    const s = await openEvents(
      { url: t.url, token: t.token, prefix: t.config.pathPrefix },
      id,
      follow ? { follow: true } : {},
    );
    streams.push(s);
    expect(s.status).toBe(200);
    return s;
  };
  const spawn = async (body: Record<string, unknown>): Promise<string> => {
    const r = await t.api("/v1/instances", {
      method: "POST",
      json: { image: "tag:busybox:latest", shell: true, ...body },
    });
    const j = (await r.json()) as { uuid: string; error?: string };
    expect(r.status, j.error).toBe(202);
    return j.uuid;
  };
  /** Polls the document; each time it is terminal, a plain replay must end with its completion. */
  const poll = async (id: string): Promise<{ status: string; replay: OperationEventT[] }> => {
    for (;;) {
      const d = await doc(id);
      if (TERMINAL.includes(d.status)) {
        const replay = await (await events(id, false)).done();
        expect(replay.at(-1), `${id} is ${d.status}`).toMatchObject({
          type: "completion",
          data: { status: d.status },
        });
        return { status: d.status, replay };
      }
      // No completion before the status: a replay of an active operation never holds one.
      const replay = await (await events(id, false)).done();
      const completion = replay.find((e) => e.type === "completion");
      if (completion) expect(TERMINAL).toContain((await doc(id)).status);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it("runs ending every way and a failed import: status and completion are never seen apart", {
    timeout: 180_000,
  }, async () => {
    const ids: Array<{ id: string; expect: string }> = [];
    for (let i = 0; i < 6; i++)
      ids.push({ id: await spawn({ command: `echo run ${i}` }), expect: "SUCCESS" });
    for (let i = 0; i < 3; i++) ids.push({ id: await spawn({ command: "exit 3" }), expect: "SUCCESS" });
    for (let i = 0; i < 2; i++)
      ids.push({ id: await spawn({ command: "sleep 20", timeout: 1 }), expect: "SUCCESS" });
    const cancelled: string[] = [];
    for (let i = 0; i < 4; i++)
      cancelled.push(await spawn({ command: "echo started; sleep 30", timeout: 60 }));
    const imp = await t.api("/v1/images/import", {
      method: "POST",
      json: { registry: { url: `docker://${reg.host}/no/such-image:latest` } },
    });
    expect(imp.status).toBe(202);
    ids.push({ id: ((await imp.json()) as { uuid: string }).uuid, expect: "FAILED" });
    for (const id of cancelled) ids.push({ id, expect: "CANCELLED" });

    const follows = await Promise.all(ids.map(({ id }) => events(id, true)));
    const polls = ids.map(({ id }) => poll(id));
    // Half cancelled at once (pending or just assigned), half once their process runs.
    for (const [i, id] of cancelled.entries()) {
      if (i % 2 === 1)
        while ((await doc(id)).status !== "EXECUTING") await new Promise((r) => setTimeout(r, 10));
      expect((await t.api(`/v1/operations/${id}`, { method: "DELETE" })).status).toBe(202);
    }
    const results = await Promise.all(polls);
    for (const [i, { id, expect: status }] of ids.entries()) {
      const followed = await (follows[i] as SseStream).done();
      expect(results[i]?.status, id).toBe(status);
      expect(followed.at(-1)).toMatchObject({ type: "completion", data: { status } });
      expect(followed).toEqual(results[i]?.replay);
    }
    expect(probe.probes()).toBeGreaterThan(ids.length * 2);
    expect(probe.torn).toEqual([]);
  });
});
