/**
 * The data dir's root is traversable (sandbox uids in user namespaces reach runs/<op>/rootfs),
 * so what lies under it must close itself: the metadata database (every tenant's tokens and
 * names), uploads, outputs and layers are the server's alone, whatever uid lists or reads them.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../harness/in-process.js";

const mode = (p: string) => statSync(p).mode & 0o777;

describe("data dir modes", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
    // a write, so the WAL and its index exist
    const r = await t.api("/v1/files", { method: "POST", body: "hello" });
    expect(r.status).toBeLessThan(300);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  it("keeps the root traversable but not listable", () => {
    expect(mode(t.dataDir)).toBe(0o711);
    expect(mode(join(t.dataDir, "runs"))).toBe(0o711);
  });

  it("makes the database and its journal files the server's alone", () => {
    for (const f of ["metadata.db", "metadata.db-wal", "metadata.db-shm"])
      expect([f, mode(join(t.dataDir, f))]).toEqual([f, 0o600]);
  });

  it("closes uploads, outputs and layers", () => {
    for (const d of ["content", "outputs", "layers", "staging"])
      expect([d, mode(join(t.dataDir, d))]).toEqual([d, 0o700]);
  });
});
