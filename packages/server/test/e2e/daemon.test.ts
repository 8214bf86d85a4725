import { randomBytes } from "node:crypto";
import { access, mkdtemp, readdir, rm } from "node:fs/promises";
import { request } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, memoryOf, runCli, startDaemon, TEST_BOOTSTRAP_TOKEN } from "../harness/daemon.js";

const ALL_TRUE = {
  list: true,
  spawn: true,
  spawn_disposable: true,
  import: true,
  cancel: true,
  set_image_tag: true,
  delete_image: true,
};
const MiB = 1024 * 1024;

async function whoami(d: { url: string }, token: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${d.url}/v1/whoami`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Chunked upload of `total` bytes; resolves with the response status and body, whatever the socket does after. */
function chunkedUpload(
  url: string,
  token: string,
  total: number,
): Promise<{ status: number; body: string; sent: number }> {
  const block = randomBytes(64 * 1024);
  return new Promise((resolve, reject) => {
    const u = new URL(`${url}/v1/files`);
    let sent = 0;
    let answered = false;
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/octet-stream",
          "transfer-encoding": "chunked",
        },
      },
      (res) => {
        answered = true;
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, sent }));
        res.on("error", () => resolve({ status: res.statusCode ?? 0, body, sent }));
      },
    );
    req.on("error", (e) => {
      if (!answered) reject(new Error(`upload failed before any response after ${sent} bytes: ${e.message}`));
    });
    const pump = () => {
      while (sent < total && !req.destroyed) {
        const n = Math.min(block.length, total - sent);
        sent += n;
        if (!req.write(n === block.length ? block : block.subarray(0, n))) {
          req.once("drain", pump);
          return;
        }
      }
      if (!req.destroyed) req.end();
    };
    pump();
  });
}

/** Each CLI run loads the sources through tsx (seconds of CPU); two at a time suits 2 cores. */
async function inPairs<T extends Array<() => Promise<unknown>>>(
  jobs: [...T],
): Promise<{ [K in keyof T]: T[K] extends () => Promise<infer R> ? R : never }> {
  const out: unknown[] = [];
  for (let i = 0; i < jobs.length; i += 2)
    out.push(...(await Promise.all(jobs.slice(i, i + 2).map((j) => j()))));
  return out as { [K in keyof T]: T[K] extends () => Promise<infer R> ? R : never };
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

describe("contree-server daemon (end to end)", () => {
  let d: Daemon;
  beforeAll(async () => {
    d = await startDaemon({ env: { CONTREE_MAX_UPLOAD_BYTES: String(8 * MiB) } });
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
  });

  it("answers whoami as specified for the bootstrap token", async () => {
    const r = await whoami(d, TEST_BOOTSTRAP_TOKEN);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      token_expiration: null,
      project: "default",
      permissions: ALL_TRUE,
      limits: {
        instance_max_timeout: 3600,
        instance_max_concurrency: 10,
        instance_max_layer_bytes: 12884901888,
        images_import_max_concurrency: 5,
        images_import_max_timeout: 3600,
      },
      operations_stat: {},
    });
    expect(r.body["token_uuid"]).toMatch(/^[0-9a-f-]{36}$/);
    expect((await whoami(d, "wrong-token")).status).toBe(401);
    expect(d.stdout()).toContain('Admin token for project "default" set from CONTREE_BOOTSTRAP_TOKEN');
    expect(d.stdout()).not.toContain(TEST_BOOTSTRAP_TOKEN);
  });

  it("admin CLI: project create, token create/list/revoke against the running daemon's data dir", async () => {
    const dd = ["--data-dir", d.dataDir];
    const created = await runCli(["project", "create", "team-a", ...dd]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^[0-9a-f-]{36}\tteam-a\n$/);
    const updated = await runCli([
      "project",
      "update",
      "team-a",
      "--set",
      "images_ttl_seconds=0",
      "--set",
      "files_ttl_seconds=60",
      ...dd,
    ]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toBe("images_ttl_seconds\t0\nfiles_ttl_seconds\t60\n");
    const refused = await runCli(["project", "update", "team-a", "--set", "files_ttl_seconds=-1", ...dd]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("files_ttl_seconds must be an integer 0..");

    const tok = await runCli([
      "token",
      "create",
      "--project",
      "team-a",
      "--permissions",
      "list,spawn",
      ...dd,
    ]);
    expect(tok.code, tok.stderr).toBe(0);
    const secret = tok.stdout.trim();
    expect(secret).toMatch(/^ctr_[A-Za-z0-9_-]{43}$/);
    const tokenId = /token ([0-9a-f-]{36}) created for project team-a/.exec(tok.stderr)?.[1];
    expect(tokenId).toBeDefined();

    const me = await whoami(d, secret);
    expect(me.status).toBe(200);
    expect(me.body["token_uuid"]).toBe(tokenId);
    expect(me.body["project"]).toBe("team-a");
    expect(me.body["limits"]).toMatchObject({ images_ttl_seconds: 0, files_ttl_seconds: 60 });
    expect(me.body["permissions"]).toEqual({
      list: true,
      spawn: true,
      spawn_disposable: false,
      import: false,
      cancel: false,
      set_image_tag: false,
      delete_image: false,
    });
    expect((await whoami(d, secret, { project: "default" })).status).toBe(403);

    const [listAll, listTeam, projects] = await inPairs([
      () => runCli(["token", "list", ...dd]),
      () => runCli(["token", "list", "--project", "team-a", ...dd]),
      () => runCli(["project", "list", ...dd]),
    ]);
    expect(listAll.code).toBe(0);
    const row = listAll.stdout.split("\n").find((l) => l.startsWith(tokenId as string));
    expect(row?.split("\t").slice(0, 4)).toEqual([tokenId, "team-a", "no", "list,spawn"]);
    expect(row).toContain("\tactive\t");
    expect(listAll.stdout).not.toContain(secret);
    expect(listTeam.stdout.trim().split("\n")).toHaveLength(2);
    expect(projects.stdout).toMatch(/\tdefault\t/);
    expect(projects.stdout).toMatch(/\tpublic\t/);
    expect(projects.stdout).toMatch(/\tteam-a\t/);

    const revoked = await runCli(["token", "revoke", tokenId as string, ...dd]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout.trim()).toBe(`revoked ${tokenId}`);
    const after = await whoami(d, secret);
    expect(after.status).toBe(401);
    expect(after.body).toEqual({ error: "invalid token", status: 401 });
    const listed = await runCli(["token", "list", "--project", "team-a", ...dd]);
    expect(listed.stdout).toContain("\trevoked\t");
  }, 600_000);

  it("admin CLI refuses bad input with a clear message and a non-zero exit", async () => {
    const dd = ["--data-dir", d.dataDir];
    const [dup, badName, badPerm, noProject, noToken, badExpiry] = await inPairs([
      () => runCli(["project", "create", "default", ...dd]),
      () => runCli(["project", "create", "Bad Name", ...dd]),
      () => runCli(["token", "create", "--project", "default", "--permissions", "list,fly", ...dd]),
      () => runCli(["token", "create", "--project", "nope", ...dd]),
      () => runCli(["token", "revoke", "00000000-0000-4000-8000-000000000000", ...dd]),
      () => runCli(["token", "create", "--project", "default", "--expires-in", "0", ...dd]),
    ]);
    expect([dup.code, dup.stderr]).toEqual([1, 'contree-server: project "default" already exists\n']);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain("project name must match");
    expect(badPerm.code).toBe(2);
    expect(badPerm.stderr).toContain('unknown permission "fly"');
    expect(noProject.code).toBe(1);
    expect(noProject.stderr).toContain('project "nope" not found');
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("not found");
    expect(badExpiry.code).toBe(2);
    expect(badExpiry.stderr).toContain("--expires-in must be a positive number of days");
  }, 600_000);

  it("an oversized chunked upload (50 MB, limit 8 MiB) is 413 while the daemon's RSS stays flat; no temp files", async () => {
    // Warm up the upload path so lazily loaded code does not count as growth.
    const warm = await chunkedUpload(d.url, TEST_BOOTSTRAP_TOKEN, 1 * MiB);
    expect(warm.status).toBe(201);
    const blobsBefore = await readdir(join(d.dataDir, "content", "blobs", "sha256"));
    const base = await memoryOf(d.pid);
    let peak = base.rss;
    const sampler = setInterval(() => {
      memoryOf(d.pid).then(
        (m) => {
          peak = Math.max(peak, m.rss);
        },
        () => {},
      );
    }, 20);
    let res: { status: number; body: string; sent: number };
    try {
      res = await chunkedUpload(d.url, TEST_BOOTSTRAP_TOKEN, 50 * MiB);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, (await memoryOf(d.pid)).rss);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toEqual({
      error: `upload exceeds the limit of ${8 * MiB} bytes`,
      status: 413,
    });
    const growth = peak - base.rss;
    console.log(
      `oversized upload: RSS ${Math.round(base.rss / MiB)} MiB -> peak ${Math.round(peak / MiB)} MiB (growth ${(growth / MiB).toFixed(1)} MiB)`,
    );
    expect(growth).toBeLessThan(50 * MiB);
    expect(await readdir(join(d.dataDir, "content", "ingest"))).toEqual([]);
    expect((await readdir(join(d.dataDir, "content", "blobs", "sha256"))).sort()).toEqual(blobsBefore.sort());
    // And the daemon is still serving.
    expect((await whoami(d, TEST_BOOTSTRAP_TOKEN)).status).toBe(200);
  }, 120_000);

  it("SIGTERM shuts down gracefully with exit code 0", async () => {
    const r = await d.stop("SIGTERM");
    expect(r).toEqual({ code: 0, signal: null });
    expect(await exists(d.dataDir)).toBe(false);
  }, 60_000);
});

describe("first start without a bootstrap token", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "contree-e2e-gen-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("prints a generated admin token once; the second start does not; SIGINT exits 0", async () => {
    const first = await startDaemon({ dataDir: dir, token: null });
    let generated: string;
    try {
      const m =
        /Admin token for project "default" \(shown once, store it now\):\n {2}(ctr_[A-Za-z0-9_-]{43})\n/.exec(
          first.stdout(),
        );
      expect(m, first.stdout()).not.toBeNull();
      generated = m?.[1] as string;
      expect(first.token).toBe(generated);
      expect((await whoami(first, generated)).status).toBe(200);
    } finally {
      expect(await first.stop("SIGINT")).toEqual({ code: 0, signal: null });
    }
    expect(await exists(join(dir, "metadata.db"))).toBe(true);

    const second = await startDaemon({ dataDir: dir, token: null });
    try {
      expect(second.stdout()).not.toContain("Admin token");
      expect(second.stdout()).not.toContain(generated);
      expect(second.stdout()).toContain("listening on http://127.0.0.1:");
      const r = await whoami(second, generated);
      expect(r.status).toBe(200);
      expect(r.body["permissions"]).toEqual(ALL_TRUE);
    } finally {
      expect(await second.stop()).toEqual({ code: 0, signal: null });
    }
  }, 600_000);
});

describe("bad configuration", () => {
  it("is refused with a clear message and a non-zero exit before anything is created", async () => {
    const parent = await mkdtemp(join(tmpdir(), "contree-e2e-bad-"));
    const busy = createNetServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    try {
      const data = (n: string) => join(parent, n);
      const [listen, runtime, both, inUse] = await inPairs([
        () => runCli(["serve", "--data-dir", data("a"), "--listen", "localhost"]),
        () =>
          runCli(["serve", "--data-dir", data("b"), "--listen", "127.0.0.1:0"], {
            env: { CONTREE_RUNTIME: "kata" },
          }),
        () => runCli(["serve", "--data-dir", data("c"), "--listen", "[::1]:99999", "--log-level", "loud"]),
        () => runCli(["serve", "--data-dir", data("d"), "--listen", `127.0.0.1:${port}`]),
      ]);
      expect(listen.code).toBe(2);
      expect(listen.stderr).toContain('listen address must be HOST:PORT, got "localhost"');
      expect(runtime.code).toBe(2);
      expect(runtime.stderr).toContain(
        'runtime must be one of auto, gvisor, oci, crun, runc, runsc, got "kata"',
      );
      expect(both.code).toBe(2);
      expect(both.stderr).toContain("listen port must be 0..65535, got 99999");
      expect(both.stderr).toContain("log level must be one of");
      for (const r of [listen, runtime, both]) {
        expect(r.stderr).toMatch(/^contree-server: invalid configuration:\n/);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect(r.stdout).not.toContain("listening");
      }
      expect(await exists(data("a"))).toBe(false);
      expect(await exists(data("b"))).toBe(false);
      expect(await exists(data("c"))).toBe(false);
      expect(inUse.code).not.toBe(0);
      expect(inUse.code).not.toBeNull();
      expect(inUse.stderr).toMatch(/EADDRINUSE|address already in use/);
      expect(inUse.stderr).not.toMatch(/\n\s+at /);
    } finally {
      busy.close();
      await rm(parent, { recursive: true, force: true });
    }
  }, 600_000);
});
